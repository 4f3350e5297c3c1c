"""Retention: the matrix, churn and rates equal a plain-Python computation
written here on random order histories; the worked example; time zones at
month boundaries; which orders count; the split by rating, delay and
support; snapshots replaced whole; bad CLI input refused.

Orders go in through `app.orders.apply` (what webhooks and the history
import call), so the incremental facts are what is tested."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from app.cli import main
from app.events import CustomerSnapshot, OrderSnapshot
from app.models import (
    Customer,
    DelayEpisode,
    Order,
    RetentionAtRisk,
    RetentionSnapshot,
    Shop,
    Survey,
    Ticket,
)
from app.orders import Cause, apply
from app.retention import period_retention_rate, wilson_interval
from app.retention_snapshots import SnapshotRequest, take_snapshot
from app.shops import add_shop

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
_shops = itertools.count(1)
_orders = itertools.count(9_000_000)


def new_shop(db, timezone: str = "UTC", window: int = 180) -> int:
    with Session(db) as session:
        shop, _ = add_shop(session, f"retention-{next(_shops)}.myshopify.com", NOW)
        shop.timezone, shop.churn_window_days = timezone, window
        session.add(shop)
        session.commit()
        return shop.id


def place(
    db,
    shop_id: int,
    customer: int,
    at: datetime,
    total: str = "10.00",
    *,
    financial_status: str = "paid",
    cancelled: bool = False,
    test: bool = False,
    order_id: int | None = None,
    updated_at: datetime | None = None,
) -> int:
    """Apply one order snapshot as a webhook would."""
    order_id = order_id or next(_orders)
    updated = updated_at or at
    event = OrderSnapshot(
        shopify_id=order_id, updated_at=updated, name=None, created_at=at,
        financial_status=financial_status, fulfillment_status=None,
        cancelled_at=updated if cancelled else None, currency="USD", total_price=Decimal(total),
        email=None, phone=None, test=test,
        customer=CustomerSnapshot(customer, updated, {}, complete=False),
    )  # fmt: skip
    with Session(db) as session:
        apply(session, shop_id, event, Cause("test", None, NOW))
        session.commit()
    return order_id


def snapshot(db, shop_id, as_of: date, period="month", window=None) -> dict:
    taken = take_snapshot(db, shop_id, NOW, SnapshotRequest(as_of, period, window))
    return json.loads(taken.report)


# --- the independent computation -----------------------------------------------


def start_of(day: date, period: str) -> date:
    if period == "week":
        return date.fromordinal(day.toordinal() - day.weekday())
    if period == "quarter":
        return date(day.year, 1 + 3 * ((day.month - 1) // 3), 1)
    return date(day.year, day.month, 1)


def index_of(day: date, period: str) -> int:
    """Periods since a fixed origin, so offsets are differences."""
    if period == "week":
        return start_of(day, "week").toordinal() // 7
    months = day.year * 12 + day.month - 1
    return months // 3 if period == "quarter" else months


def expected(orders, timezone: str, as_of: date, period: str, window: int) -> dict:
    """orders: (customer, created_at, total, counted)."""
    tz = ZoneInfo(timezone)
    days: dict[int, list[tuple[date, Decimal]]] = {}
    for customer, created, total, counts in orders:
        day = created.astimezone(tz).date()
        if counts and day <= as_of:
            days.setdefault(customer, []).append((day, Decimal(total)))
    cohorts: dict[date, dict] = {}
    cutoff = as_of - timedelta(days=window)
    for history in days.values():
        first = min(d for d, _ in history)
        last = max(d for d, _ in history)
        cohort = cohorts.setdefault(
            start_of(first, period),
            {"customers": 0, "churned": 0, "repeat": 0, "cells": {}, "revenue": Decimal(0),
             "first": first},
        )  # fmt: skip
        cohort["customers"] += 1
        cohort["first"] = min(cohort["first"], first)
        cohort["churned"] += last <= cutoff
        cohort["repeat"] += len(history) > 1
        cohort["revenue"] += sum(t for _, t in history)
        for offset in {index_of(d, period) - index_of(first, period) for d, _ in history}:
            cohort["cells"][offset] = cohort["cells"].get(offset, 0) + 1
    return {
        start.isoformat(): {
            "customers": c["customers"],
            "churned": None if c["first"] > cutoff else c["churned"],
            "repeat_customers": c["repeat"],
            "revenue": str(c["revenue"].quantize(Decimal("0.01"))),
            "cells": {o: n for o, n in c["cells"].items()},
        }
        for start, c in cohorts.items()
    }


def observed(report: dict) -> dict:
    return {
        c["cohort"]: {
            "customers": c["customers"],
            "churned": c["churned"],
            "repeat_customers": c["repeat_customers"],
            "revenue": c["revenue"],
            "cells": {
                cell["offset"]: cell["customers"] for cell in c["cells"] if cell["customers"]
            },
        }
        for c in report["cohorts"]
    }


ORDER = st.tuples(
    st.integers(1, 6),  # customer
    st.integers(0, 3 * 365 * 24),  # hours after the start
    st.sampled_from(["5.00", "19.99", "120.50"]),
    st.sampled_from(
        ["paid", "paid", "paid", "refunded", "partially_refunded", "cancelled", "test"]
    ),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    history=st.lists(ORDER, min_size=1, max_size=14),
    timezone=st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]),
    period=st.sampled_from(["week", "month", "quarter"]),
    window=st.sampled_from([30, 180]),
    as_of_days=st.integers(200, 3 * 365),
)
def test_matrix_churn_and_rates_equal_a_plain_computation(
    db, history, timezone, period, window, as_of_days
):
    shop_id = new_shop(db, timezone)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    orders = []
    for customer, hours, total, kind in history:
        at = start + timedelta(hours=hours)
        place(
            db, shop_id, 7_000_000 + customer, at, total,
            financial_status="refunded" if kind == "refunded" else "paid",
            cancelled=kind == "cancelled", test=kind == "test",
        )  # fmt: skip
        orders.append((customer, at, total, kind in ("paid", "partially_refunded")))
    as_of = (start + timedelta(days=as_of_days)).date()

    report = snapshot(db, shop_id, as_of, period, window)

    assert observed(report) == expected(orders, timezone, as_of, period, window)
    for cohort in report["cohorts"]:  # offset 0 is the whole cohort
        assert cohort["cells"][0]["customers"] == cohort["customers"]
        assert cohort["cells"][0]["percent"] == 100.0


def test_the_worked_example_of_period_retention():
    assert period_retention_rate(350, 300, 76) == 64.0
    assert period_retention_rate(0, 10, 10) is None


def test_wilson_interval_is_the_textbook_one():
    assert wilson_interval(5, 10) == (23.7, 76.3)
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 4) == (0.0, 49.0)


@pytest.mark.parametrize(
    ("timezone", "at", "cohort"),
    [
        # 23:30 UTC on 31 January is already 1 February in Madrid.
        ("Europe/Madrid", datetime(2026, 1, 31, 23, 30, tzinfo=UTC), "2026-02-01"),
        ("UTC", datetime(2026, 1, 31, 23, 30, tzinfo=UTC), "2026-01-01"),
        # 03:00 UTC on 1 February is still 31 January in New York.
        ("America/New_York", datetime(2026, 2, 1, 3, 0, tzinfo=UTC), "2026-01-01"),
    ],
)
def test_cohorts_follow_the_shops_calendar_at_month_boundaries(db, timezone, at, cohort):
    shop_id = new_shop(db, timezone)
    place(db, shop_id, 7001, at)
    report = snapshot(db, shop_id, date(2026, 6, 30))
    assert [c["cohort"] for c in report["cohorts"]] == [cohort]


def test_cancelled_refunded_and_test_orders_do_not_count(db):
    shop_id = new_shop(db)
    at = datetime(2026, 3, 10, 12, tzinfo=UTC)
    place(db, shop_id, 1, at, cancelled=True)
    place(db, shop_id, 2, at, financial_status="refunded")
    place(db, shop_id, 3, at, test=True)
    place(db, shop_id, 4, at, financial_status="partially_refunded")
    # An order counted at first, then cancelled: its customer leaves the cohort.
    order = place(db, shop_id, 5, at)
    place(db, shop_id, 5, at, cancelled=True, order_id=order, updated_at=at + timedelta(days=1))

    report = snapshot(db, shop_id, date(2026, 3, 31))

    assert [(c["cohort"], c["customers"]) for c in report["cohorts"]] == [("2026-03-01", 1)]


def test_a_test_order_from_shopify_is_stored_as_test_and_not_counted(deliver, work, db, shop):
    from support import load_fixture

    payload = load_fixture("shopify", "orders_create") | {"test": True}
    assert deliver("orders/create", payload).status_code == 200
    work()
    with Session(db) as session:
        assert session.exec(select(Order.test)).one() is True
    report = snapshot(db, shop.id, date(2026, 11, 30))
    assert report["cohorts"] == []


def test_a_young_cohort_says_so_instead_of_zero_churn(db):
    shop_id = new_shop(db, window=180)
    place(db, shop_id, 1, datetime(2025, 1, 5, tzinfo=UTC))
    place(db, shop_id, 2, datetime(2026, 5, 5, tzinfo=UTC))
    report = snapshot(db, shop_id, date(2026, 6, 30))
    churn = {
        c["cohort"]: (c["too_young"], c["churned"], c["churn_rate"]) for c in report["cohorts"]
    }
    assert churn == {"2025-01-01": (False, 1, 100.0), "2026-05-01": (True, None, None)}


def _customer_id(db, shop_id: int, shopify_id: int) -> int:
    with Session(db) as session:
        return session.exec(
            select(Customer.id).where(
                Customer.shop_id == shop_id, Customer.shopify_id == shopify_id
            )
        ).one()


def _order_id(db, shop_id: int, shopify_id: int) -> int:
    with Session(db) as session:
        return session.exec(
            select(Order.id).where(Order.shop_id == shop_id, Order.shopify_id == shopify_id)
        ).one()


def test_churn_is_split_by_rating_delay_and_support(db):
    shop_id = new_shop(db, window=90)
    first = datetime(2026, 1, 10, 12, tzinfo=UTC)
    orders = {c: place(db, shop_id, c, first) for c in range(1, 6)}
    place(db, shop_id, 1, first + timedelta(days=150))  # customer 1 comes back: active
    ids = {c: _customer_id(db, shop_id, c) for c in orders}
    order_ids = {c: _order_id(db, shop_id, o) for c, o in orders.items()}
    at = first + timedelta(days=3)
    with Session(db) as session:

        def ticket(customer, channel, response_after, external):
            row = Ticket(
                shop_id=shop_id, source="api", external_id=external, channel=channel,
                status="closed", customer_id=ids[customer], order_id=order_ids[customer],
                opened_at=at, first_response_at=at + response_after, source_updated_at=at,
                created_at=at,
            )  # fmt: skip
            session.add(row)
            session.flush()
            return row

        # 1: email answered in 2 h, rated 5; delayed and told before asking.
        rated = ticket(1, "email", timedelta(hours=2), "T1")
        session.add(Survey(shop_id=shop_id, ticket_id=rated.id, customer_id=ids[1], rating=5,
                           answered_at=at, created_at=at))  # fmt: skip
        session.add(DelayEpisode(shop_id=shop_id, order_id=order_ids[1], cause="stalled",
                                 detected_at=at - timedelta(days=1),
                                 told_at=at - timedelta(hours=1)))  # fmt: skip
        # 2: chat answered in 30 min (target 10 min), rated 2; told after they asked.
        late = ticket(2, "chat", timedelta(minutes=30), "T2")
        session.add(Survey(shop_id=shop_id, ticket_id=late.id, customer_id=ids[2], rating=2,
                           answered_at=at, created_at=at))  # fmt: skip
        session.add(DelayEpisode(shop_id=shop_id, order_id=order_ids[2], cause="stalled",
                                 detected_at=at - timedelta(days=1),
                                 told_at=at + timedelta(hours=1)))  # fmt: skip
        # 3: delayed, never told, no ticket.
        session.add(DelayEpisode(shop_id=shop_id, order_id=order_ids[3], cause="exception",
                                 detected_at=at))  # fmt: skip
        session.commit()

    report = snapshot(db, shop_id, date(2026, 6, 30))
    splits = {
        name: {g["group"]: (g["customers"], g["churned"]["count"]) for g in groups}
        for name, groups in report["splits"].items()
    }
    assert splits["rating"] == {"1-2": (1, 1), "3": (0, 0), "4-5": (1, 0), "never rated": (3, 3)}
    assert splits["delay"] == {
        "delayed, told before they asked": (1, 0),
        "delayed, not told or told late": (2, 2),
        "never delayed": (2, 2),
    }
    assert splits["support"] == {
        "answered within target": (1, 0),
        "answered late or not at all": (1, 1),
        "no ticket": (3, 3),
    }
    never = report["splits"]["rating"][3]
    assert never["churned"]["percent"] == 100.0
    assert never["churned"]["interval"] == list(wilson_interval(3, 3))


def test_rerunning_a_date_replaces_its_snapshot_and_a_crash_keeps_the_previous(db):
    shop_id = new_shop(db)
    place(db, shop_id, 1, datetime(2026, 3, 1, tzinfo=UTC))
    snapshot(db, shop_id, date(2026, 3, 31))
    place(db, shop_id, 2, datetime(2026, 3, 2, tzinfo=UTC))
    snapshot(db, shop_id, date(2026, 3, 31))
    with Session(db) as session:
        rows = session.exec(select(RetentionSnapshot).where(RetentionSnapshot.shop_id == shop_id))
        assert [(s.as_of, s.customers) for s in rows.all()] == [(date(2026, 3, 31), 2)]

    place(db, shop_id, 3, datetime(2026, 3, 3, tzinfo=UTC))

    def crash(step: str) -> None:
        if step == "at risk":
            raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError):
        take_snapshot(db, shop_id, NOW, SnapshotRequest(date(2026, 3, 31)), progress=crash)
    with Session(db) as session:
        rows = session.exec(select(RetentionSnapshot).where(RetentionSnapshot.shop_id == shop_id))
        assert [s.customers for s in rows.all()] == [2]


def test_customers_at_risk_are_active_and_past_their_usual_interval(db):
    shop_id = new_shop(db, window=180)
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for days in (0, 10, 20):  # every 10 days, last on 21 January: 160 days ago
        place(db, shop_id, 1, start + timedelta(days=days))
    for days in (0, 30, 60):  # every 30 days, last on 1 May: 60 days ago
        place(db, shop_id, 2, start + timedelta(days=60 + days))
    place(db, shop_id, 4, start - timedelta(days=200))  # churned: not at risk any more
    place(db, shop_id, 3, start + timedelta(days=170))  # one order 20 June: not overdue
    taken = take_snapshot(db, shop_id, NOW, SnapshotRequest(date(2026, 6, 30)))
    with Session(db) as session:
        rows = session.exec(
            select(RetentionAtRisk).where(RetentionAtRisk.snapshot_id == taken.id)
        ).all()
    assert [(r.customer_id, r.days_since, r.usual_interval_days) for r in rows] == [
        (_customer_id(db, shop_id, 1), 160, 10),
        (_customer_id(db, shop_id, 2), 60, 30),
    ]


def test_snapshots_of_one_shop_hold_none_of_another(db):
    mine, theirs = new_shop(db), new_shop(db)
    place(db, theirs, 1, datetime(2026, 3, 1, tzinfo=UTC))
    assert snapshot(db, mine, date(2026, 3, 31))["cohorts"] == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--as-of", "2026-13-01"], "--as-of"),
        (["--period", "year"], "--period"),
        (["--window", "0"], "--window"),
        (["--shop", "nowhere.myshopify.com"], "no installed shop"),
    ],
)
def test_retention_run_refuses_bad_input_and_stores_nothing(runner, db, shop, arguments, message):
    result = runner.invoke(main, ["retention", "run", *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output
    with Session(db) as session:
        assert session.exec(select(RetentionSnapshot)).all() == []


def test_retention_run_stores_a_snapshot_per_shop(runner, db, shop):
    place(db, shop.id, 1, datetime(2026, 3, 1, tzinfo=UTC))
    result = runner.invoke(
        main, ["retention", "run", "--shop", shop.domain, "--as-of", "2026-03-31"]
    )
    assert result.exit_code == 0, result.output
    assert "1 customers" in result.output
    with Session(db) as session:
        stored = session.exec(select(RetentionSnapshot)).one()
        assert (stored.shop_id, stored.as_of, stored.period) == (
            shop.id,
            date(2026, 3, 31),
            "month",
        )
        assert session.get(Shop, shop.id).churn_window_days == stored.window_days == 180


def test_a_customer_churns_on_the_day_the_window_has_passed(db):
    shop_id = new_shop(db, window=30)
    place(db, shop_id, 1, datetime(2026, 1, 1, 12, tzinfo=UTC))
    place(db, shop_id, 2, datetime(2026, 1, 2, 12, tzinfo=UTC))
    report = snapshot(db, shop_id, date(2026, 1, 31))  # 30 days after 1 January
    assert report["cohorts"][0]["churned"] == 1
    assert report["totals"]["churned"] == 1


def test_the_nightly_job_snapshots_yesterday_in_the_shops_time_zone(db, rt, clock):
    from app import jobs

    shop_id = new_shop(db, "Asia/Tokyo")
    place(db, shop_id, 1, datetime(2026, 3, 1, tzinfo=UTC))
    idle = new_shop(db)  # no counted orders: nothing to report
    # 17:00 UTC on 21 November is 02:00 on the 22nd in Tokyo: not yet due.
    clock.current = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)
    jobs.enqueue_shop_jobs(rt)
    jobs.run_shop_jobs(rt)  # other kinds (the rules' sweep) may run: none is a snapshot
    with Session(db) as session:
        assert session.exec(select(RetentionSnapshot)).all() == []
    clock.advance(minutes=31)  # 02:31 in Tokyo
    jobs.enqueue_shop_jobs(rt)
    jobs.run_shop_jobs(rt)
    with Session(db) as session:
        stored = session.exec(select(RetentionSnapshot)).all()
    assert [(s.shop_id, s.as_of) for s in stored] == [(shop_id, date(2026, 11, 21))]
    assert idle not in {s.shop_id for s in stored}


def test_the_report_is_served_as_json_and_csv_to_its_shop_only(client, db, shop, other_shop):
    place(db, shop.id, 1, datetime(2026, 3, 1, tzinfo=UTC), "12.50")
    place(db, shop.id, 1, datetime(2026, 4, 2, tzinfo=UTC), "7.50")
    place(db, shop.id, 2, datetime(2026, 3, 5, tzinfo=UTC))
    assert client.get("/api/v1/reports/retention", headers=shop.auth).status_code == 404
    snapshot(db, shop.id, date(2026, 4, 30))

    answer = client.get("/api/v1/reports/retention", headers=shop.auth)
    assert answer.status_code == 200
    march = answer.json["cohorts"][0]
    assert (march["label"], march["customers"], march["revenue"]) == ("2026-03", 2, "30.00")
    assert [(c["offset"], c["customers"], c["percent"]) for c in march["cells"]] == [
        (0, 2, 100.0),
        (1, 1, 50.0),
    ]
    assert march["shopify"]["retention_rates"] == [0.0, 50.0]
    assert answer.json["trend"] == [
        {"as_of": "2026-04-30", "customers": 2, "churn_rate": None, "repeat_rate": 50.0}
    ]

    table = client.get("/api/v1/reports/retention.csv?period=month", headers=shop.auth)
    assert table.status_code == 200 and table.mimetype == "text/csv"
    lines = table.get_data(as_text=True).splitlines()
    assert lines[0] == "section,cohort,offset,group,customers,count,percent,revenue"
    assert "matrix,2026-03,1,,2,1,50.0,7.50" in lines

    assert client.get("/api/v1/reports/retention", headers=other_shop.auth).status_code == 404


@pytest.mark.parametrize("query", ["as_of=2026-02-30", "period=year", "limit=5", "as_of=yesterday"])
def test_a_bad_report_query_is_refused_with_the_reason(client, shop, query):
    for path in ("/api/v1/reports/retention", "/api/v1/reports/retention.csv"):
        answer = client.get(f"{path}?{query}", headers=shop.auth)
        assert answer.status_code == 400, (path, query)
        assert query.split("=")[0] in answer.json["error"]["message"]


def test_the_churn_window_is_a_shop_setting(client, db, shop):
    assert client.get("/api/v1/settings/retention", headers=shop.auth).json == {
        "churn_window_days": 180
    }
    for bad in ({"churn_window_days": 0}, {"churn_window_days": "90"}, {"window": 90}):
        assert (
            client.patch("/api/v1/settings/retention", json=bad, headers=shop.auth).status_code
            == 400
        )
    answer = client.patch(
        "/api/v1/settings/retention", json={"churn_window_days": 90}, headers=shop.auth
    )
    assert answer.json == {"churn_window_days": 90}
    place(db, shop.id, 1, datetime(2026, 1, 1, tzinfo=UTC))
    assert snapshot(db, shop.id, date(2026, 6, 30))["window_days"] == 90


def test_the_demo_shop_gets_a_year_of_history_and_a_filled_heatmap(db):
    from app.demo_history import seed_history

    shop_id = new_shop(db)
    assert seed_history(db, shop_id, NOW) > 300
    with Session(db) as session:
        stored = session.exec(select(RetentionSnapshot)).one()
    report = json.loads(stored.report)
    assert len(report["cohorts"]) >= 12
    assert sum(len(c["cells"]) for c in report["cohorts"]) > 70  # a triangle, not a column
    assert any(c["cells"][1]["customers"] for c in report["cohorts"] if len(c["cells"]) > 1)


def test_headline_figures_come_from_the_latest_monthly_snapshot(db):
    from app.retention_snapshots import headline

    shop_id = new_shop(db, window=30)
    with Session(db) as session:
        assert headline(session, shop_id) is None
    place(db, shop_id, 1, datetime(2026, 1, 5, tzinfo=UTC), "20.00")
    place(db, shop_id, 1, datetime(2026, 3, 20, tzinfo=UTC), "10.00")
    place(db, shop_id, 2, datetime(2026, 1, 9, tzinfo=UTC), "30.00")
    snapshot(db, shop_id, date(2026, 2, 28))
    snapshot(db, shop_id, date(2026, 3, 31))
    with Session(db) as session:
        figures = headline(session, shop_id)
    assert figures == {
        "as_of": "2026-03-31", "customers": 2, "churn_rate": 50.0, "repeat_rate": 50.0,
        "revenue_per_customer": "30.00", "currency": "USD", "at_risk": 0, "window_days": 30,
    }  # fmt: skip


def test_period_retention_counts_active_at_start_and_end_and_acquired(db):
    shop_id = new_shop(db, window=60)
    place(db, shop_id, 1, datetime(2026, 1, 10, 12, tzinfo=UTC))
    place(db, shop_id, 2, datetime(2026, 2, 5, 12, tzinfo=UTC))
    place(db, shop_id, 3, datetime(2026, 3, 3, 12, tzinfo=UTC))
    march = snapshot(db, shop_id, date(2026, 3, 31))["period_retention"][-1]
    # Active on 28 February: 1 and 2; on 31 March: 2 and 3 (1's window ended); 3 is new.
    assert (march["period"], march["active_at_start"], march["active_at_end"]) == ("2026-03", 2, 2)
    assert (march["acquired"], march["rate"]) == (1, 50.0)
