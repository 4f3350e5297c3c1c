"""The support report (`GET /api/v1/reports/support`, `/app/support`):
figures checked against values computed here, in plain Python, from the raw
rows of generated ticket histories; the service-level grading at its edges."""

from __future__ import annotations

import csv
import io
import random
import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session

from app import service_levels
from app.models import DelayEpisode, Order, Shop, Survey, Ticket, TicketMessage
from support import sign_in

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # the clock fixture's time
FIRST, LAST = date(2026, 11, 1), date(2026, 11, 21)  # the shop is on UTC
START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)
CHANNELS = ("email", "chat", "sms", "phone", "social")
TYPES = ("where_is_my_order", "return", "damage", "product_question", "other")


@dataclass
class History:
    """What was written, kept as plain rows to compute the figures from."""

    tickets: list[dict] = field(default_factory=list)
    orders: list[datetime] = field(default_factory=list)
    delays: list[dict] = field(default_factory=list)  # order index, detected, told


def generate(session: Session, shop_id: int, seed: int, tickets: int = 120) -> History:
    rng = random.Random(seed)
    history = History()
    order_ids = []
    for n in range(60):
        placed = START - timedelta(days=25) + timedelta(hours=rng.randrange(0, 46 * 24))
        order = Order(
            shop_id=shop_id, shopify_id=seed * 10_000 + n + 1, name=f"#{1000 + n}",
            state="paid", state_changed_at=placed, created_at=placed, shopify_created_at=placed,
            currency="USD", total_price=Decimal("10.00"),
        )  # fmt: skip
        session.add(order)
        session.flush()
        order_ids.append(order.id)
        history.orders.append(placed)
    for n in range(tickets):
        opened = START - timedelta(days=22) + timedelta(minutes=rng.randrange(0, 44 * 24 * 60))
        channel = rng.choice(CHANNELS)
        replies = rng.choice((0, 1, 1, 2, 3))
        internal = rng.choice((0, 0, 1))
        gaps = sorted(rng.randrange(1, 50 * 3600) for _ in range(replies))
        first_response = opened + timedelta(seconds=gaps[0]) if gaps else None
        closed = None
        if rng.random() < 0.7:
            closed = opened + timedelta(
                seconds=(gaps[-1] if gaps else 0) + rng.randrange(60, 90_000)
            )
            closed = closed if closed < NOW else None
        order_index = rng.randrange(len(order_ids)) if rng.random() < 0.6 else None
        row = {
            "channel": channel, "type": rng.choice(TYPES), "tier": rng.choice(("1", "2")),
            "assignee": rng.choice(("ana", "bo", None)), "opened": opened,
            "first_response": first_response, "closed": closed, "replies": replies,
            "internal": internal, "order": order_index,
        }  # fmt: skip
        ticket = Ticket(
            shop_id=shop_id, source="api", external_id=f"T{seed}-{n}", channel=channel,
            status="closed" if closed else "open", type=row["type"], tier=row["tier"],
            assignee=row["assignee"], opened_at=opened, first_response_at=first_response,
            closed_at=closed, source_updated_at=opened, created_at=opened,
            order_id=order_ids[order_index] if order_index is not None else None,
        )  # fmt: skip
        session.add(ticket)
        session.flush()
        for i, gap in enumerate(gaps):
            session.add(TicketMessage(
                shop_id=shop_id, ticket_id=ticket.id, external_id=f"a{i}", author_kind="agent",
                public=True, sent_at=opened + timedelta(seconds=gap),
            ))  # fmt: skip
        for i in range(internal):
            session.add(TicketMessage(
                shop_id=shop_id, ticket_id=ticket.id, external_id=f"i{i}", author_kind="agent",
                public=False, sent_at=opened,
            ))  # fmt: skip
        row["survey"] = None
        if closed and rng.random() < 0.8:
            sent = closed + timedelta(minutes=5)
            answered = sent + timedelta(hours=rng.randrange(1, 30)) if rng.random() < 0.6 else None
            answered = answered if answered and answered < NOW else None
            rating = rng.randrange(1, 6) if answered else None
            session.add(Survey(
                shop_id=shop_id, ticket_id=ticket.id, agent=row["assignee"], sent_at=sent,
                rating=rating, answered_at=answered, comment="slow" if rating == 1 else None,
                created_at=sent,
            ))  # fmt: skip
            row["survey"] = {"sent": sent, "answered": answered, "rating": rating}
        history.tickets.append(row)
    for index in rng.sample(range(len(order_ids)), 20):
        detected = START - timedelta(days=10) + timedelta(hours=rng.randrange(0, 30 * 24))
        told = detected + timedelta(hours=rng.randrange(0, 72)) if rng.random() < 0.6 else None
        session.add(DelayEpisode(
            shop_id=shop_id, order_id=order_ids[index], cause=rng.choice(("stalled", "exception")),
            detected_at=detected, told_at=told,
        ))  # fmt: skip
        history.delays.append({"order": index, "detected": detected, "told": told})
    session.commit()
    return history


def within(moment: datetime | None, start: datetime = START, end: datetime = END) -> bool:
    return moment is not None and start <= moment < end


def pct(part: int, whole: int) -> dict:
    return {"percent": round(part * 100 / whole, 2) if whole else None, "count": part, "of": whole}


def expected(history: History, start: datetime = START, end: datetime = END) -> dict:
    """The figures, computed from the rows as written (independent of the app)."""
    opened = [t for t in history.tickets if within(t["opened"], start, end)]
    closed = [t for t in history.tickets if within(t["closed"], start, end)]
    surveys = [t["survey"] for t in history.tickets if t["survey"]]
    sent = [s for s in surveys if within(s["sent"], start, end)]
    ratings = [s["rating"] for s in surveys if within(s["answered"], start, end)]
    real_time = [t for t in closed if t["channel"] in ("chat", "sms", "phone")]
    replied = [t for t in closed if t["replies"]]
    frt = [(t["first_response"] - t["opened"]).total_seconds() for t in opened if t["replies"]]
    orders = sum(1 for placed in history.orders if within(placed, start, end))
    wismo = [t for t in opened if t["type"] == "where_is_my_order"]
    delayed = {}
    for d in history.delays:
        if within(d["detected"], start, end):
            delayed[d["order"]] = d["told"]
    asked = {}
    for t in history.tickets:
        if t["order"] is not None:
            asked[t["order"]] = min(asked.get(t["order"], t["opened"]), t["opened"])
    told_first = [o for o, told in delayed.items() if told and (o not in asked or told < asked[o])]
    breaches = 0
    for t in opened:
        limit = timedelta(minutes=10) if t["channel"] in ("chat", "sms", "phone") else timedelta(1)
        if (t["first_response"] or NOW) - t["opened"] > limit:
            breaches += 1
    return {
        "tickets_opened": len(opened),
        "tickets_closed": len(closed),
        "csat": pct(sum(1 for r in ratings if r >= 4), len(ratings)),
        "distribution": {str(n): ratings.count(n) for n in range(1, 6)},
        "response_rate": pct(sum(1 for s in sent if s["rating"] is not None), len(sent)),
        "first_response_median": statistics.median(frt) if frt else None,
        "sla_breaches": breaches,
        "one_touch": pct(sum(1 for t in replied if t["replies"] == 1), len(replied)),
        "self_service": pct(
            sum(
                1
                for t in closed
                if not t["replies"]
                and not t["internal"]
                and t["channel"] not in ("chat", "sms", "phone")
            ),
            len(closed),
        ),
        "abandonment": pct(sum(1 for t in real_time if not t["replies"]), len(real_time)),
        "contact_rate": pct(len(opened), orders),
        "wismo_contact_rate": pct(len(wismo), orders),
        "proactive_coverage": pct(len(told_first), len(delayed)),
    }


def report(client, shop, **query) -> dict:
    query = {"from": FIRST.isoformat(), "to": LAST.isoformat()} | query
    response = client.get("/api/v1/reports/support", query_string=query, headers=shop.auth)
    assert response.status_code == 200, response.json
    return response.json


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_report_figures_equal_an_independent_computation_from_the_rows(
    client, db, shop, other_shop, seed
):
    with Session(db) as session:
        history = generate(session, shop.id, seed)
        generate(session, other_shop.id, seed + 100, tickets=40)  # never counted for `shop`
    got = report(client, shop)
    want = expected(history)
    current = got["current"]
    for name in ("tickets_opened", "tickets_closed", "csat", "distribution", "response_rate",
                 "one_touch", "self_service", "abandonment", "contact_rate",
                 "wismo_contact_rate", "proactive_coverage"):  # fmt: skip
        assert current[name] == want[name], name
    assert current["first_response"]["median_seconds"] == pytest.approx(
        want["first_response_median"], abs=0.1
    )
    assert current["sla_breaches"]["total"] == want["sla_breaches"]
    previous = expected(history, START - (END - START), START)
    assert got["previous"]["tickets_opened"] == previous["tickets_opened"]
    assert got["previous"]["csat"] == previous["csat"]


def test_filters_count_only_the_matching_tickets(client, db, shop):
    with Session(db) as session:
        history = generate(session, shop.id, 7)
    got = report(client, shop, channel="email", agent="ana")["current"]
    opened = [
        t for t in history.tickets
        if within(t["opened"]) and t["channel"] == "email" and t["assignee"] == "ana"
    ]  # fmt: skip
    assert got["tickets_opened"] == len(opened)
    assert got["contact_rate"]["count"] == len(opened)


def test_a_channel_filter_does_not_narrow_the_channels_the_shop_offers(client, db, shop):
    with Session(db) as session:
        history = generate(session, shop.id, 7)
    offered = len({t["channel"] for t in history.tickets if within(t["opened"])})
    assert offered > 1
    for query in ({}, {"channel": "email"}):
        card = report(client, shop, **query)["service_level"]
        [channels] = [d for d in card["dimensions"] if d["dimension"] == "channels offered"]
        assert channels["value"] == offered, query


def test_low_ratings_come_with_their_comment_and_ticket(client, db, shop):
    with Session(db) as session:
        history = generate(session, shop.id, 4)
    low = report(client, shop)["low_ratings"]
    want = sum(
        1
        for t in history.tickets
        if t["survey"] and within(t["survey"]["answered"]) and t["survey"]["rating"] <= 3
    )
    assert len(low) == want > 0
    assert all(r["rating"] <= 3 for r in low)
    assert {r["comment"] for r in low if r["rating"] == 1} <= {"slow"}


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-11-10", "to": "2026-11-01"},
        {"from": "2025-01-01", "to": "2026-11-01"},
        {"from": "yesterday", "to": "2026-11-01"},
        {"from": "2026-11-01"},
        {"from": "2026-11-01", "to": "2026-11-02", "channel": "pigeon"},
        {"from": "2026-11-01", "to": "2026-11-02", "colour": "red"},
    ],
)
def test_a_bad_report_query_is_refused_with_the_reason(client, shop, query):
    response = client.get("/api/v1/reports/support", query_string=query, headers=shop.auth)
    assert response.status_code == 400
    assert response.json["error"]["message"]


def test_periods_are_whole_days_in_the_shops_time_zone(client, db, shop):
    """A ticket at 23:30 in Los Angeles on the last day is in the period; one
    at 00:30 the next local day (08:30 UTC) is not."""
    with Session(db) as session:
        session.get(Shop, shop.id).timezone = "America/Los_Angeles"
        for n, at in enumerate((datetime(2026, 11, 22, 7, 30, tzinfo=UTC),
                                datetime(2026, 11, 22, 8, 30, tzinfo=UTC))):  # fmt: skip
            session.add(Ticket(
                shop_id=shop.id, source="api", external_id=f"tz{n}", channel="email",
                status="open", opened_at=at, source_updated_at=at, created_at=at,
            ))  # fmt: skip
        session.commit()
    assert report(client, shop)["current"]["tickets_opened"] == 1


# --- the service level ---------------------------------------------------------


def figures(frt: float | None, count: int = 25, resolution: float | None = 3600) -> dict:
    return {
        "first_response": {"average_seconds": frt, "count": count},
        "resolution": {"average_seconds": resolution, "count": count},
    }


def shop_wide(rating=4.95, responses=25, coverage=95.0, delayed=25, channels=4) -> dict:
    return {
        "average_rating": rating,
        "csat": {"of": responses},
        "proactive_coverage": {"percent": coverage, "of": delayed},
        "channels": ["email", "chat", "social", "phone"][:channels],
    }


@pytest.mark.parametrize(
    ("seconds", "level"),
    [
        (3599, "stellar"),
        (3600, "above_average"),  # "< 1 h" is strict
        (14399, "above_average"),
        (14400, "average"),
        (86400, "average"),  # "≤ 24 h" includes 24 h
        (86401, "below_average"),
        (259200, "below_average"),
        (259201, "unacceptable"),
    ],
)
def test_email_first_response_is_graded_at_the_documented_edges(seconds, level):
    card = service_levels.scorecard({"email": figures(seconds, resolution=60)}, shop_wide())
    assert card["channels"]["email"]["dimensions"][0]["level"] == level


def test_the_overall_level_is_the_weakest_dimension_and_says_what_the_next_level_takes():
    card = service_levels.scorecard(
        {"email": figures(5 * 3600 + 600, resolution=60), "real_time": figures(30)},
        shop_wide(),
    )
    assert card["overall"] == "average"
    assert card["weakest"]["dimension"] == "first response on email"
    assert card["weakest"]["note"] == (
        "first response on email is 5 h 10 min; under 4 h 0 min reaches above average"
    )


def test_below_the_minimum_sample_a_dimension_is_not_graded():
    card = service_levels.scorecard(
        {"email": figures(10 * 86400, count=19)}, shop_wide(rating=1.0, responses=19)
    )
    email = card["channels"]["email"]["dimensions"][0]
    assert email["level"] is None and "not enough data" in email["note"]
    rating = card["dimensions"][0]
    assert rating["level"] is None
    assert card["overall"] == "stellar"  # only the graded dimensions count


@pytest.mark.parametrize(
    ("coverage", "level"),
    [
        (90.0, "stellar"),
        (89.99, "above_average"),
        (40.0, "average"),
        (0.5, "below_average"),
        (0.0, "unacceptable"),
    ],
)
def test_proactivity_is_graded_from_coverage(coverage, level):
    card = service_levels.scorecard({}, shop_wide(coverage=coverage))
    assert card["dimensions"][1]["level"] == level


@pytest.fixture
def signed_in(shop, client):
    """The test client signed in to the shop's pages (through the login form)."""
    sign_in(client, shop.token)
    return client


def test_the_page_shows_the_figures_the_level_and_the_definitions(signed_in, db, shop):
    with Session(db) as session:
        history = generate(session, shop.id, 5)
    page = signed_in.get(f"/app/support?from={FIRST}&to={LAST}").get_data(as_text=True)
    want = expected(history)["csat"]
    assert f"{want['percent']}%" in page and f"({want['count']} / {want['of']})" in page
    assert "Service level" in page and "<svg" in page
    assert "CSAT score = responses rated 4 or 5" in page


def test_the_page_refuses_a_bad_period_with_the_reason(signed_in):
    response = signed_in.get("/app/support?from=2026-11-10&to=2026-11-01")
    assert response.status_code == 400
    assert "`to` is before `from`" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "comment",
    ['=HYPERLINK("http://x")', " =1+1", "@SUM(A1)", "+1", "-1", "\t=1", "\uff1d1+1"],
)
def test_the_csv_has_a_row_per_ticket_and_no_comment_runs_as_a_formula(client, db, shop, comment):
    with Session(db) as session:
        history = generate(session, shop.id, 6)
        ticket = Ticket(
            shop_id=shop.id, source="api", external_id="evil", channel="email", status="closed",
            opened_at=START, closed_at=START, source_updated_at=START, created_at=START,
        )  # fmt: skip
        session.add(ticket)
        session.flush()
        session.add(Survey(
            shop_id=shop.id, ticket_id=ticket.id, rating=1, comment=comment,
            sent_at=START, answered_at=START, created_at=START,
        ))  # fmt: skip
        session.commit()
    response = client.get(
        "/api/v1/reports/support.csv",
        query_string={"from": FIRST.isoformat(), "to": LAST.isoformat()},
        headers=shop.auth,
    )
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    tickets = rows[1 : rows.index([])]
    assert len(tickets) == expected(history)["tickets_opened"] + 1
    evil = next(r for r in tickets if r[0] == "evil")
    assert evil[-1] == "'" + comment
    csat = next(r for r in rows if r and r[0] == "csat")
    assert csat[2] != "" and int(csat[3]) >= 1


def test_home_shows_the_last_30_days_csat_once_there_are_responses(signed_in, db, shop):
    assert "CSAT, last 30 days" not in signed_in.get("/app/").get_data(as_text=True)
    with Session(db) as session:
        history = generate(session, shop.id, 8)
    start = END - timedelta(days=29)  # 30 whole days up to today, the clock's 22 November
    end = END + timedelta(days=1)
    want = expected(history, start, end)["csat"]
    page = signed_in.get("/app/").get_data(as_text=True)
    assert "CSAT, last 30 days" in page
    assert f"{want['percent']:g} %" in page
    assert f"{want['count']} of {want['of']} rated 4 or 5" in page


# --- a shop's own bounds --------------------------------------------------------------


def test_a_shops_own_bound_changes_the_grade():
    own = service_levels.scale_for({"first_response": {"email": {"stellar": 6 * 3600}}})
    card = service_levels.scorecard({"email": figures(5 * 3600, resolution=60)}, shop_wide(), own)
    assert card["channels"]["email"]["dimensions"][0]["level"] == "stellar"
    ours = service_levels.scorecard({"email": figures(5 * 3600, resolution=60)}, shop_wide())
    assert ours["channels"]["email"]["dimensions"][0]["level"] == "average"


def test_service_level_bounds_are_set_per_shop_and_the_report_grades_on_them(
    client, db, shop, other_shop
):
    url = "/api/v1/settings/service-levels"
    assert client.get(url, headers=shop.auth).json["scale"]["min_sample"] == 20
    with Session(db) as session:
        generate(session, shop.id, 9, tickets=30)
    assert report(client, shop)["service_level"]["dimensions"][0]["level"] is None  # < 20 rated

    changed = client.patch(url, headers=shop.auth, json={
        "min_sample": 1, "satisfaction": {"average": 3.5},
        "first_response": {"email": {"stellar": 1800}},
    })  # fmt: skip
    assert changed.status_code == 200, changed.json
    scale = changed.json["scale"]
    assert scale["satisfaction"]["average"] == 3.5 and scale["satisfaction"]["stellar"] == 4.9
    assert scale["first_response"]["email"]["stellar"] == 1800
    assert scale["first_response"]["email"]["above_average"] == 4 * 3600  # ours still
    assert report(client, shop)["service_level"]["dimensions"][0]["level"] is not None
    assert client.get(url, headers=other_shop.auth).json["own"] == {}  # another shop's own


@pytest.mark.parametrize(
    "body",
    [
        {"first_response": {"email": {"stellar": 20 * 3600}}},  # not stricter than above average
        {"satisfaction": {"below_average": 4.95}},
        {"proactivity": {"stellar": 101}},
        {"first_response": {"fax": {"stellar": 60}}},
        {"min_sample": 0},
        {"colour": "red"},
    ],
)
def test_bounds_that_cannot_grade_are_refused_and_change_nothing(client, shop, body):
    url = "/api/v1/settings/service-levels"
    response = client.patch(url, headers=shop.auth, json=body)
    assert response.status_code in (400, 422)
    assert response.json["error"]["message"]
    assert client.get(url, headers=shop.auth).json["own"] == {}


def test_sla_breaches_count_against_the_shops_own_first_response_target(client, db, shop):
    opened = START + timedelta(days=2)
    with Session(db) as session:
        for n, reply_after in enumerate((timedelta(minutes=30), timedelta(hours=2))):
            session.add(Ticket(
                shop_id=shop.id, source="api", external_id=f"S{n}", channel="email",
                status="open", type="other", opened_at=opened,
                first_response_at=opened + reply_after, source_updated_at=opened,
                created_at=opened,
            ))  # fmt: skip
        session.commit()
    assert report(client, shop)["current"]["sla_breaches"]["total"] == 0  # ours: 24 h

    own = {"first_response": {"email": {"stellar": 600, "above_average": 1800, "average": 3600}}}
    changed = client.patch("/api/v1/settings/service-levels", headers=shop.auth, json=own)
    assert changed.status_code == 200, changed.json
    breaches = report(client, shop)["current"]["sla_breaches"]
    assert breaches["total"] == 1  # the reply after 2 h, past the shop's own 1 h
    assert breaches["per_day"] == {opened.date().isoformat(): 1}


def test_the_previous_period_is_whole_local_days_across_a_clock_change(client, db, shop):
    """November 2-8 in New York holds the change back to winter time (the 1st
    is a Sunday): the week before it, October 26 to November 1, starts at
    local midnight (04:00 UTC), not an hour off."""
    with Session(db) as session:
        session.get(Shop, shop.id).timezone = "America/New_York"
        for n, at in enumerate(
            (
                datetime(2026, 10, 26, 3, 30, tzinfo=UTC),  # Oct 25, 23:30
                datetime(2026, 10, 26, 4, 30, tzinfo=UTC),
            )
        ):  # Oct 26, 00:30
            session.add(Ticket(
                shop_id=shop.id, source="api", external_id=f"dst{n}", channel="email",
                status="open", opened_at=at, source_updated_at=at, created_at=at,
            ))  # fmt: skip
        session.commit()
    got = report(client, shop, **{"from": "2026-11-02", "to": "2026-11-08"})
    assert got["previous_period"] == {"from": "2026-10-26", "to": "2026-11-01"}
    assert got["previous"]["tickets_opened"] == 1
