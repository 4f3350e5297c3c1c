"""Proactive rules through the public paths: signed webhooks (or a provider's
facts applied as the inbox would), the per-shop sweep job the scheduler
queues and a worker runs, and the outbox rows and delay episodes they leave.
The clock is the project's frozen clock throughout."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from app import delay_checks, jobs, rules, worker
from app.events import ShipmentSnapshot, ShipmentStatus
from app.models import DelayEpisode, Notification, Order, OrderEvent, Rule, ShopJob
from app.orders import Cause, apply
from notifications import outbox
from notifications.folder import FolderEmailProvider, FolderSmsProvider
from notifications.transports import Transports
from support import ON_POSTGRESQL, load_fixture, set_shop, sign_in

ORDER = 5001001
# orders_paid was placed on Friday 2026-11-20 at 09:00 UTC; the clock starts
# on Sunday the 22nd at noon. Two business days (UTC): Tuesday 09:00; the
# 72 hours of grace: Friday the 27th at 09:00.
SHIP_BY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
NOT_SHIPPED_DUE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def hook(deliver, clock, work):
    """A Shopify webhook triggered now (by the frozen clock), then the worker."""

    def send(topic: str, payload: dict | str):
        if isinstance(payload, str):
            payload = load_fixture("shopify", payload)
        stamp = clock.now().isoformat().replace("+00:00", "Z")
        response = deliver(topic, payload, triggered_at=stamp)
        assert response.status_code == 200, response.get_data(as_text=True)
        work()

    return send


@pytest.fixture
def sweep(rt):
    """What the scheduler and a worker do every few minutes."""

    def run() -> None:
        jobs.enqueue_shop_jobs(rt)
        jobs.run_shop_jobs(rt)

    return run


@pytest.fixture
def send(rt, tmp_path):
    """The worker's outbox step, with the development transport (files)."""
    transports = Transports(
        FolderEmailProvider(tmp_path / "email"), FolderSmsProvider(tmp_path / "sms.log")
    )
    return lambda: worker.send_due(rt, transports)


def messages(db, kind: str | None = None) -> list[Notification]:
    with Session(db) as session:
        query = select(Notification).order_by(Notification.id)
        if kind:
            query = query.where(Notification.kind == kind)
        return list(session.exec(query).all())


def episodes(db) -> list[DelayEpisode]:
    with Session(db) as session:
        return list(session.exec(select(DelayEpisode).order_by(DelayEpisode.id)).all())


def the_order(db) -> Order:
    with Session(db) as session:
        return session.exec(select(Order).where(Order.shopify_id == ORDER)).one()


def parcel(rt, status: ShipmentStatus, **facts) -> None:
    """A fulfillment provider's word on the order's parcel, applied and
    reacted to in one transaction, as the inbox does."""
    now = rt.clock.now()
    snapshot = ShipmentSnapshot(
        source="shipbob", external_id="sb-1", status=status, updated_at=now,
        order_shopify_id=ORDER, carrier="UPS", tracking_number="1ZSB1", **facts,
    )  # fmt: skip
    with Session(rt.engine) as session:
        rules.react(session, apply(session, _shop_id(rt), snapshot,
                                   Cause("test:provider", None, now)), now)  # fmt: skip
        session.commit()


def _shop_id(rt) -> int:
    with Session(rt.engine) as session:
        return session.exec(select(Order.shop_id).where(Order.shopify_id == ORDER)).one()


def context(message: Notification) -> dict:
    return json.loads(message.context)


# --- not shipped by the promise ----------------------------------------------------


def test_an_order_not_shipped_by_the_promise_is_told_once_after_the_grace(
    shop, hook, sweep, send, clock, db
):
    hook("orders/paid", "orders_paid")
    assert the_order(db).next_check_at == NOT_SHIPPED_DUE

    clock.current = NOT_SHIPPED_DUE - timedelta(minutes=1)
    sweep()
    assert messages(db, "delay") == [] and episodes(db) == []

    clock.current = NOT_SHIPPED_DUE
    sweep()
    sweep()  # the same slot again: nothing new
    delay_checks.sweep(db, shop.id, clock.now())  # and the sweep itself, run twice
    [message] = messages(db, "delay")
    assert context(message)["cause"] == "not_shipped"
    assert (message.recipient, message.status) == ("ana@example.com", "queued")
    [episode] = episodes(db)
    assert (episode.cause, episode.promised_at, episode.detected_at) == (
        "not_shipped", SHIP_BY, NOT_SHIPPED_DUE,
    )  # fmt: skip
    assert (episode.told_at, episode.told_channel) == (None, "email")  # on its way
    clock.advance(minutes=2)
    send()
    [episode] = episodes(db)
    assert (episode.told_at, episode.told_channel) == (clock.now(), "email")  # when it left


def stop_rule(client, shop, rule_id: int, how: str) -> None:
    """Switch a rule off or delete it, through the API."""
    url = f"/api/v1/rules/{rule_id}"
    if how == "switch off":
        assert client.patch(url, headers=shop.auth, json={"enabled": False}).status_code == 200
    else:
        assert client.delete(url, headers=shop.auth).status_code == 204


def add_rule(client, shop, **fields) -> dict:
    body = {"trigger": "delay_not_shipped", "channels": ["email"]} | fields
    response = client.post("/api/v1/rules", headers=shop.auth, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_the_most_specific_rule_that_applies_tells_and_the_catch_all_the_rest(
    shop, hook, sweep, clock, db, client
):
    listed = client.get("/api/v1/rules", headers=shop.auth).get_json()["rules"]
    default = next(r for r in listed if r["trigger"] == "delay_not_shipped")
    spain = add_rule(client, shop, name="Spain", countries=["ES"])
    add_rule(client, shop, name="Big orders in Spain", countries=["ES"], min_order_value="500")
    add_rule(client, shop, name="Any amount", min_order_value="0")  # turns no order away
    hook("orders/paid", "orders_paid")  # 83.85 EUR, to Spain
    clock.current = NOT_SHIPPED_DUE

    url = f"/api/v1/rules/{default['id']}/preview"
    [entry] = client.get(url, headers=shop.auth).get_json()["would_tell"]
    assert entry["not_sent_because"] == "rule 'Spain' tells this order instead: it comes first"
    sweep()
    [message] = messages(db, "delay")
    assert message.rule_id == spain["id"]  # not the older catch-all, not the big-order rule

    # Switched off: the catch-all takes the order over, in a message of its own.
    switched = client.patch(f"/api/v1/rules/{spain['id']}", headers=shop.auth,
                            json={"enabled": False})  # fmt: skip
    assert switched.status_code == 200
    withdrawn, again = sorted(messages(db, "delay"), key=lambda m: m.id)
    assert (withdrawn.status, again.status) == ("suppressed", "queued")
    assert again.rule_id == default["id"]


@pytest.mark.parametrize("stop", ["switch off", "delete"])
def test_stopping_a_stage_rule_hands_its_queued_message_to_the_rule_still_on(
    shop, hook, db, client, stop
):
    listed = client.get("/api/v1/rules", headers=shop.auth).get_json()["rules"]
    default = next(r for r in listed if r["trigger"] == "shipped")
    spain = add_rule(client, shop, name="Shipped to Spain", trigger="shipped", countries=["ES"])
    hook("orders/paid", "orders_paid")
    hook("fulfillments/create", load_fixture("shopify", "fulfillments_create"))
    [first] = messages(db, "shipping")
    assert first.rule_id == spain["id"]

    url = f"/api/v1/rules/{spain['id']}"
    stop_rule(client, shop, spain["id"], stop)
    withdrawn, again = sorted(messages(db, "shipping"), key=lambda m: m.id)
    assert (withdrawn.status, again.status, again.rule_id) == (
        "suppressed",
        "queued",
        default["id"],
    )
    client.patch(url, headers=shop.auth, json={"enabled": True})
    assert len(messages(db, "shipping")) == 2  # switched on again: nothing sent twice


def test_a_dead_letter_of_a_rule_switched_off_is_not_sent_by_hand(shop, hook, db, client, clock):
    hook("orders/paid", "orders_paid")
    hook("fulfillments/create", load_fixture("shopify", "fulfillments_create"))
    [message] = messages(db, "shipping")
    with Session(db) as session:
        outbox.transition(session, session.get(Notification, message.id), outbox.DEAD,
                          clock.now(), "gave up")  # fmt: skip
        session.commit()
    url = f"/api/v1/rules/{message.rule_id}"
    client.patch(url, headers=shop.auth, json={"enabled": False})
    csrf = sign_in(client, shop.token)
    retry = f"/app/notifications/{message.id}/retry"
    refused = client.post(retry, data={"csrf": csrf})
    assert refused.status_code == 409 and "is off or deleted" in refused.get_data(as_text=True)
    assert messages(db, "shipping")[0].status == "dead"

    client.patch(url, headers=shop.auth, json={"enabled": True})
    assert client.post(retry, data={"csrf": csrf}).status_code == 302
    assert messages(db, "shipping")[0].status == "queued"


def test_the_rules_page_says_which_rule_can_never_be_used(shop, db, client):
    listed = client.get("/api/v1/rules", headers=shop.auth).get_json()["rules"]
    default = next(r for r in listed if r["trigger"] == "delay_not_shipped")
    twin = add_rule(client, shop, name="Another not-shipped notice")
    other = add_rule(client, shop, name="Not shipped, tagged", tags=["vip"])
    # Spain and France come first for every Spanish order (as specific, older).
    add_rule(client, shop, name="Spain and France", countries=["ES", "FR"])
    spain = add_rule(client, shop, name="Spain", countries=["ES"])
    big_spain = add_rule(client, shop, name="Big in Spain", countries=["ES"], min_order_value="50")
    sign_in(client, shop.token)
    page = client.get("/app/rules").get_data(as_text=True)
    assert f'id="never-fires-{twin["id"]}"' in page
    assert default["name"] in page[page.index(f'id="never-fires-{twin["id"]}"') :][:300]
    assert f'id="never-fires-{other["id"]}"' not in page
    assert f'id="never-fires-{default["id"]}"' not in page
    assert f'id="never-fires-{spain["id"]}"' in page
    assert f'id="never-fires-{big_spain["id"]}"' not in page  # more specific: it comes first


def test_a_delay_that_keeps_growing_escalates_once(shop, hook, sweep, send, clock, db):
    hook("orders/paid", "orders_paid")
    clock.current = NOT_SHIPPED_DUE
    sweep()
    send()
    assert the_order(db).next_check_at == NOT_SHIPPED_DUE + timedelta(hours=72)

    clock.current = NOT_SHIPPED_DUE + timedelta(hours=72)
    sweep()
    clock.advance(days=10)
    sweep()
    first, escalation = messages(db, "delay")
    assert (context(first)["escalated"], context(escalation)["escalated"]) == (False, True)
    assert episodes(db)[0].escalated_at == NOT_SHIPPED_DUE + timedelta(hours=72)
    assert the_order(db).next_check_at is None  # nothing left to become due


def test_a_delay_whose_cause_went_away_is_never_escalated_but_gets_the_follow_up(
    shop, hook, rt, sweep, send, clock, db
):
    hook("orders/paid", "orders_paid")
    clock.current = NOT_SHIPPED_DUE
    sweep()
    send()  # told: not shipped
    clock.advance(hours=1)
    parcel(rt, ShipmentStatus.IN_TRANSIT, last_scan_at=clock.now(), shipped_at=clock.now())
    [episode] = episodes(db)
    assert (episode.resolution, episode.escalated_at) == ("cleared", None)
    clock.current = NOT_SHIPPED_DUE + timedelta(hours=72)
    sweep()
    assert len(messages(db, "delay")) == 1  # no "update: still not shipped" once it left
    parcel(rt, ShipmentStatus.DELIVERED)
    [follow_up] = messages(db, "delay_followup")
    assert follow_up.status == "queued"


@pytest.mark.parametrize(
    ("timezone", "ship_by"),
    [
        # Placed on Friday at 23:30 UTC: still Friday in UTC and New York...
        ("UTC", datetime(2026, 11, 24, 23, 30, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 11, 24, 23, 30, tzinfo=UTC)),
        # ...but Saturday morning in Tokyo: Monday and Tuesday count, whole.
        ("Asia/Tokyo", datetime(2026, 11, 24, 15, 0, tzinfo=UTC)),  # Wednesday 00:00 JST
    ],
)
def test_the_promise_is_counted_in_business_days_of_the_shops_time_zone(
    shop, hook, db, timezone, ship_by
):
    set_shop(db, shop.id, timezone=timezone, not_shipped_grace_hours=24)
    hook("orders/paid", load_fixture("shopify", "orders_paid")
         | {"created_at": "2026-11-20T23:30:00Z"})  # fmt: skip
    assert the_order(db).next_check_at == ship_by + timedelta(hours=24)


@pytest.mark.parametrize(
    ("timezone", "placed", "ship_by"),
    [
        # Friday 15:00 in Madrid before the spring change; Tuesday 15:00 after it.
        ("Europe/Madrid", "2026-03-27T15:00:00+01:00", datetime(2026, 3, 31, 13, 0, tzinfo=UTC)),
        # Friday 26 February 2027, then Monday 1 and Tuesday 2 March.
        ("UTC", "2027-02-26T10:00:00Z", datetime(2027, 3, 2, 10, 0, tzinfo=UTC)),
        # A leap year: Monday 28 February 2028, then 29 February and 1 March.
        ("UTC", "2028-02-28T10:00:00Z", datetime(2028, 3, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_the_promise_across_daylight_saving_and_the_end_of_february(
    shop, hook, db, clock, timezone, placed, ship_by
):
    set_shop(db, shop.id, timezone=timezone)
    clock.current = datetime.fromisoformat(placed).astimezone(UTC) + timedelta(hours=1)
    hook("orders/paid", load_fixture("shopify", "orders_paid")
         | {"created_at": placed, "updated_at": clock.now().isoformat()})  # fmt: skip
    assert the_order(db).next_check_at == ship_by + timedelta(hours=72)


def test_the_shops_holidays_push_the_promise(shop, hook, db):
    set_shop(db, shop.id, holidays="2026-11-23,2026-11-24")
    hook("orders/paid", "orders_paid")
    assert the_order(db).next_check_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC) + timedelta(
        hours=72
    )


def test_a_parcel_that_left_in_time_is_not_late(shop, hook, sweep, clock, db):
    hook("orders/paid", "orders_paid")
    hook("fulfillments/create", "fulfillments_create")
    clock.current = NOT_SHIPPED_DUE
    sweep()
    # Shopify's fulfillment carries no carrier scans: the merchant's problem
    # (tracking_problem), not a delay to tell the customer of.
    assert "not_shipped" not in [e.cause for e in episodes(db)]
    assert messages(db, "delay") == []


@pytest.mark.parametrize("topic", ["orders/cancelled", "refunds"])
def test_a_cancelled_or_refunded_order_is_never_told_of_a_delay(shop, hook, sweep, clock, db,
                                                                 topic):  # fmt: skip
    hook("orders/paid", "orders_paid")
    if topic == "orders/cancelled":
        hook("orders/cancelled", "orders_cancelled")
    else:
        hook("orders/updated", load_fixture("shopify", "orders_paid")
             | {"financial_status": "refunded", "updated_at": "2026-11-22T10:00:00Z"})  # fmt: skip
    assert the_order(db).next_check_at is None
    clock.current = NOT_SHIPPED_DUE + timedelta(days=5)
    sweep()
    assert messages(db, "delay") == [] and episodes(db) == []


# --- in transit ----------------------------------------------------------------


@pytest.mark.parametrize(("country", "days", "due"), [
    ("ES", 3, datetime(2026, 11, 26, 0, 0, tzinfo=UTC)),  # at home: the end of Wednesday
    ("US", 5, datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),  # abroad: the end of Friday
])  # fmt: skip
def test_a_parcel_without_a_scan_for_n_business_days_is_stalled(
    shop, hook, rt, sweep, clock, db, country, days, due
):
    set_shop(db, shop.id, country=country)
    hook("orders/paid", "orders_paid")
    scan = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday scan
    parcel(rt, ShipmentStatus.IN_TRANSIT, last_scan_at=scan, shipped_at=scan)
    clock.current = due - timedelta(seconds=1)
    sweep()
    assert "stalled" not in [e.cause for e in episodes(db)]
    clock.current = due
    sweep()
    assert "stalled" in [e.cause for e in episodes(db)]
    assert [context(m)["cause"] for m in messages(db, "delay")].count("stalled") == 1


def test_delays_found_together_are_told_in_one_message_about_the_most_pressing(
    shop, hook, rt, sweep, send, clock, db
):
    hook("orders/paid", "orders_paid")
    scan = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    parcel(rt, ShipmentStatus.IN_TRANSIT, last_scan_at=scan, shipped_at=scan,
           estimated_delivery_at=scan + timedelta(days=1))  # fmt: skip
    clock.current = scan + timedelta(days=10)  # past the estimate, and stalled long since
    sweep()
    found = {e.cause: e for e in episodes(db)}
    assert set(found) == {"estimate_passed", "stalled"}
    [message] = messages(db, "delay")
    assert context(message)["cause"] == "estimate_passed"
    assert context(message)["causes"] == ["estimate_passed", "stalled"]
    send()
    told = {(e.told_at, e.told_channel) for e in episodes(db)}
    assert told == {(clock.now(), "email")}


@pytest.mark.parametrize("stop", ["switch off", "delete"])
def test_stopping_one_rule_leaves_the_delays_other_rules_answer_for_told(
    shop, hook, rt, sweep, send, clock, db, client, stop
):
    hook("orders/paid", "orders_paid")
    scan = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    parcel(rt, ShipmentStatus.IN_TRANSIT, last_scan_at=scan, shipped_at=scan,
           estimated_delivery_at=scan + timedelta(days=1))  # fmt: skip
    clock.current = scan + timedelta(days=10)
    sweep()
    [first] = messages(db, "delay")
    assert context(first)["causes"] == ["estimate_passed", "stalled"]

    rules_now = client.get("/api/v1/rules", headers=shop.auth).get_json()["rules"]
    estimate = next(r for r in rules_now if r["trigger"] == "delay_estimate")
    stop_rule(client, shop, estimate["id"], stop)

    withdrawn, again = sorted(messages(db, "delay"), key=lambda m: m.id)
    assert withdrawn.status == "suppressed"
    assert (again.status, context(again)["cause"]) == ("queued", "stalled")
    assert again.rule_id != estimate["id"]
    send()
    # One message about the order's delays, as a check would have sent.
    told = {e.cause: e.told_at for e in episodes(db)}
    assert told == {"estimate_passed": clock.now(), "stalled": clock.now()}
    sweep()  # and nothing more, later
    assert len(messages(db, "delay")) == 2


def test_a_parcel_never_picked_up_is_not_shipped_not_stalled(shop, hook, rt, sweep, clock, db):
    hook("orders/paid", "orders_paid")
    parcel(rt, ShipmentStatus.LABEL_CREATED)
    clock.current = NOT_SHIPPED_DUE + timedelta(days=3)
    sweep()
    assert sorted(e.cause for e in episodes(db)) == ["not_shipped"]


def test_a_parcel_whose_tracking_never_starts_is_the_merchants_problem_not_the_customers(
    shop, hook, rt, sweep, clock, db, client
):
    hook("orders/paid", "orders_paid")
    parcel(rt, ShipmentStatus.SHIPPED, shipped_at=clock.now())
    clock.advance(hours=72)
    sweep()
    assert [e.cause for e in episodes(db)] == ["tracking_problem"]
    assert messages(db, "delay") == []
    sign_in(client, shop.token)
    page = client.get("/app/rules").get_data(as_text=True)
    listed = page[page.index('id="tracking-problems"') :]
    assert "#1001" in listed and "1ZSB1" in listed


def test_an_exception_is_told_at_once_and_the_delivery_brings_the_follow_up(
    shop, hook, rt, db, clock, send
):
    hook("orders/paid", "orders_paid")
    parcel(rt, ShipmentStatus.EXCEPTION, status_detail="Address not found")
    [told] = messages(db, "delay")
    assert context(told)["cause"] == "exception"
    send()

    clock.advance(hours=30)
    parcel(rt, ShipmentStatus.DELIVERED)
    [follow_up] = messages(db, "delay_followup")
    assert follow_up.status == "queued"
    [episode] = episodes(db)
    assert episode.resolution == "delivered" and episode.resolved_at is not None


def test_a_delay_message_that_never_leaves_tells_nobody_and_brings_no_follow_up(
    shop, hook, rt, db, clock, send
):
    set_shop(db, shop.id, timezone="UTC")
    hook("orders/paid", "orders_paid")
    parcel(rt, ShipmentStatus.EXCEPTION, status_detail="Address not found")
    [episode] = episodes(db)
    assert (episode.told_at, episode.told_channel) == (None, "email")  # on its way
    clock.advance(minutes=5)
    parcel(rt, ShipmentStatus.DELIVERED)  # delivered before the message left
    send()
    [delay] = messages(db, "delay")
    assert delay.status == "suppressed"
    [episode] = episodes(db)
    assert (episode.told_at, episode.told_channel) == (None, None)
    assert messages(db, "delay_followup") == []


def test_a_batch_of_sent_messages_tells_each_order_only_the_delays_its_own_message_covered(
    shop, hook, db, clock
):
    base = load_fixture("shopify", "orders_paid")
    for n in (1, 2):
        hook("orders/paid", base | {"id": ORDER + n, "name": f"#{2000 + n}"})
    with Session(db) as session:
        first, second = session.exec(
            select(Order.id).where(Order.shopify_id.in_([ORDER + 1, ORDER + 2]))
            .order_by(Order.shopify_id)
        ).all()  # fmt: skip
        for order_id in (first, second):
            for cause in ("not_shipped", "stalled"):
                session.add(DelayEpisode(
                    shop_id=shop.id, order_id=order_id, cause=cause,
                    detected_at=clock.now(), told_channel="email",
                ))  # fmt: skip
        session.commit()

        def sent(order_id: int, cause: str) -> tuple[Notification, str, datetime]:
            message = Notification(
                shop_id=shop.id, order_id=order_id, kind="delay", channel="email",
                context=json.dumps({"causes": [cause]}),
            )  # fmt: skip
            return message, outbox.SENT, clock.now()

        rules.settled(session, [sent(first, "not_shipped"), sent(second, "stalled")])
        session.commit()
    told = {(e.order_id, e.cause) for e in episodes(db) if e.told_at == clock.now()}
    assert told == {(first, "not_shipped"), (second, "stalled")}


def test_a_dead_delay_message_is_untold_until_retried_and_sent(shop, hook, rt, db, clock, send):
    hook("orders/paid", "orders_paid")
    parcel(rt, ShipmentStatus.EXCEPTION, status_detail="Address not found")
    with Session(db) as session:
        [message] = session.exec(select(Notification)).all()
        message.attempts = 99  # claimed again and again: it kills its workers
        session.add(message)
        session.commit()
    send()
    [dead] = messages(db, "delay")
    assert dead.status == "dead"
    assert (episodes(db)[0].told_at, episodes(db)[0].told_channel) == (None, None)

    clock.advance(hours=1)
    with Session(db) as session:
        assert outbox.retry_dead(session, shop.id, dead.id, clock.now())
        session.commit()
    send()
    [episode] = episodes(db)
    assert (episode.told_at, episode.told_channel) == (clock.now(), "email")


def test_an_estimate_revised_past_the_first_one_is_a_delay(shop, hook, db):
    hook("orders/paid", "orders_paid")
    first = load_fixture("shopify", "fulfillments_create")
    hook("fulfillments/create", first | {"estimated_delivery_at": "2026-11-24T18:00:00+01:00"})
    hook("fulfillments/update", first | {
        "estimated_delivery_at": "2026-11-27T18:00:00+01:00",
        "updated_at": "2026-11-22T09:00:00+01:00",
    })  # fmt: skip
    [message] = messages(db, "delay")
    assert context(message)["cause"] == "estimate_revised"
    [episode] = episodes(db)
    assert episode.promised_at == datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # the first, kept
    assert episode.expected_at == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def test_an_estimate_that_passed_undelivered_is_a_delay_once_its_day_is_over(
    shop, hook, sweep, clock, db
):
    hook("orders/paid", "orders_paid")
    first = load_fixture("shopify", "fulfillments_create")
    hook("fulfillments/create", first | {"estimated_delivery_at": "2026-11-24T18:00:00+01:00"})
    clock.current = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)
    sweep()
    assert messages(db, "delay") == []
    clock.current = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    sweep()
    [message] = messages(db, "delay")
    assert context(message)["cause"] == "estimate_passed"


# --- shipping stages -----------------------------------------------------------


def test_out_for_delivery_is_told_once_per_parcel_and_never_after_the_delivery(shop, hook, db):
    hook("orders/paid", "orders_paid")
    fulfillment = load_fixture("shopify", "fulfillments_create")
    hook("fulfillments/create", fulfillment)
    hook("fulfillments/update", fulfillment | {
        "shipment_status": "out_for_delivery", "updated_at": "2026-11-22T08:00:00+01:00",
    })  # fmt: skip
    hook("fulfillments/update", fulfillment | {
        "shipment_status": "out_for_delivery", "updated_at": "2026-11-22T09:00:00+01:00",
    })  # fmt: skip
    [told] = messages(db, "out_for_delivery")
    assert told.channel == "sms" or told.channel == "email"
    hook("fulfillments/update", fulfillment | {
        "shipment_status": "delivered", "updated_at": "2026-11-22T12:00:00+01:00",
    })  # fmt: skip
    assert len(messages(db, "out_for_delivery")) == 1
    assert messages(db, "delivered") == []  # off by default


def test_stale_stage_news_is_not_sent_and_the_timeline_says_why(shop, hook, db, clock):
    hook("orders/paid", "orders_paid")
    fulfillment = load_fixture("shopify", "fulfillments_create")
    hook("fulfillments/create", fulfillment)
    clock.advance(hours=20)
    hook("fulfillments/update", fulfillment | {
        "shipment_status": "out_for_delivery", "updated_at": "2026-11-22T08:00:00+01:00",
    })  # fmt: skip
    assert messages(db, "out_for_delivery") == []
    with Session(db) as session:
        notes = session.exec(select(OrderEvent.cause).where(OrderEvent.kind == "rule")).all()
    assert any("stale" in note for note in notes), notes


@pytest.mark.parametrize(("facts", "told"), [
    ({"last_scan_at": timedelta(hours=-1)}, True),
    ({"last_scan_at": timedelta(days=-9)}, False),  # a tracking service catching up
    ({"shipped_at": timedelta(days=-4)}, False),
])  # fmt: skip
def test_shipped_is_as_old_as_the_parcels_departure_not_as_the_report(
    shop, hook, rt, db, clock, facts, told
):
    hook("orders/paid", "orders_paid")
    parcel(rt, ShipmentStatus.IN_TRANSIT, **{k: clock.now() + v for k, v in facts.items()})
    assert len(messages(db, "shipping")) == (1 if told else 0)
    with Session(db) as session:
        notes = session.exec(select(OrderEvent.cause).where(OrderEvent.kind == "rule")).all()
    assert any("'Shipped' not sent: stale" in note for note in notes) is not told


@pytest.mark.parametrize(("scanned", "cancelled", "listed"), [
    (timedelta(hours=-1), False, True),
    (timedelta(days=-9), False, False),  # as stale as the sending decides
    (timedelta(hours=-1), True, False),  # a cancelled order hears of no stage
])  # fmt: skip
def test_the_shipped_preview_lists_only_what_sending_would_tell(
    shop, hook, rt, client, clock, scanned, cancelled, listed
):
    rules_now = client.get("/api/v1/rules", headers=shop.auth).get_json()["rules"]
    shipped = next(r for r in rules_now if r["trigger"] == "shipped")
    url = f"/api/v1/rules/{shipped['id']}"
    client.patch(url, headers=shop.auth, json={"enabled": False})  # previewed as if on
    hook("orders/paid", "orders_paid")
    parcel(rt, ShipmentStatus.IN_TRANSIT, last_scan_at=clock.now() + scanned)
    if cancelled:
        hook("orders/cancelled", "orders_cancelled")
    would_tell = client.get(url + "/preview", headers=shop.auth).get_json()["would_tell"]
    assert [w["order_id"] for w in would_tell] == ([ORDER] if listed else [])


def test_a_rule_with_conditions_applies_only_to_matching_orders(shop, hook, db):
    with Session(db) as session:
        rule = session.exec(
            select(Rule).where(Rule.shop_id == shop.id, Rule.trigger == "shipped")
        ).one()
        rule.countries, rule.min_order_value = "FR,DE", None
        session.add(rule)
        session.commit()
    hook("orders/paid", "orders_paid")  # ships to ES
    hook("fulfillments/create", "fulfillments_create")
    assert messages(db, "shipping") == []


# --- concurrency ---------------------------------------------------------------


@ON_POSTGRESQL
def test_two_sweeps_at_once_on_postgresql_tell_each_order_once(shop, hook, db, clock):
    base = load_fixture("shopify", "orders_paid")
    for n in range(40):
        hook("orders/paid", base | {"id": ORDER + 1 + n, "name": f"#{2000 + n}"})
    clock.current = NOT_SHIPPED_DUE
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            delay_checks.sweep(db, shop.id, clock.now(), batch=7)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    told = messages(db, "delay")
    assert len(told) == 40 and len({m.order_id for m in told}) == 40
    assert len(episodes(db)) == 40


def test_a_large_sweep_asks_one_more_worker_to_help_and_the_help_stops_when_done(
    shop, hook, rt, db, clock, monkeypatch
):
    base = load_fixture("shopify", "orders_paid")
    for n in range(5):
        hook("orders/paid", base | {"id": ORDER + 1 + n, "name": f"#{2000 + n}"})
    clock.current = NOT_SHIPPED_DUE
    monkeypatch.setattr(delay_checks, "SWEEP_BATCH", 2)
    jobs.enqueue_shop_jobs(rt)
    ran = jobs.run_shop_jobs(rt)  # the scheduled sweep, then the help it asked for
    with Session(db) as session:
        sweeps = session.exec(
            select(ShopJob.slot, ShopJob.status).where(ShopJob.kind == delay_checks.JOB)
        ).all()
    helpers = [slot for slot, _status in sweeps if slot.startswith("help:")]
    assert len(helpers) == 1  # the help found nothing left, so asked for no more
    assert {status for _slot, status in sweeps} == {"done"} and ran >= 2
    assert len({m.order_id for m in messages(db, "delay")}) == 5


def test_a_sweep_with_one_batch_of_work_asks_for_no_help(shop, hook, rt, db, clock):
    hook("orders/paid", "orders_paid")
    clock.current = NOT_SHIPPED_DUE
    assert delay_checks.sweep(db, shop.id, clock.now()) == 1
    with Session(db) as session:
        assert session.exec(select(ShopJob).where(ShopJob.kind == delay_checks.JOB)).all() == []


# --- the order's timeline ------------------------------------------------------


def test_the_order_says_which_rule_fired_what_was_sent_and_why_not(
    shop, hook, rt, client, clock, db
):
    hook("orders/paid", "orders_paid")
    parcel(rt, ShipmentStatus.EXCEPTION, status_detail="Address not found")
    clock.advance(hours=30)
    fulfillment = load_fixture("shopify", "fulfillments_create")
    hook("fulfillments/create", fulfillment | {"shipment_status": "out_for_delivery",
                                               "updated_at": "2026-11-19T08:00:00Z"})  # fmt: skip
    clock.advance(hours=1)
    parcel(rt, ShipmentStatus.DELIVERED)
    document = client.get(f"/api/v1/orders/{ORDER}", headers=shop.auth).get_json()
    by_kind = {m["kind"]: m for m in document["messages"]}
    assert by_kind["delay"]["rule"] == "Delivery problem"
    assert by_kind["delay"]["history"][0]["status"] == "queued"
    [delay] = document["delays"]
    assert (delay["cause"], delay["told_channel"]) == ("exception", "email")
    notes = [e["cause"] for e in document["timeline"] if e["kind"] == "rule"]
    assert any("'Shipped' not sent: stale" in note for note in notes), notes

    sign_in(client, shop.token)
    page = client.get(f"/app/orders/{ORDER}").get_data(as_text=True)
    assert "Delivery problem" in page and "not sent: stale" in page


def test_a_deleted_rule_is_gone_from_every_list_and_still_named_by_what_it_sent(
    shop, hook, client, db
):
    hook("orders/paid", "orders_paid")
    hook("fulfillments/create", load_fixture("shopify", "fulfillments_create"))
    assert len(messages(db, "shipping")) == 1
    rules_now = client.get("/api/v1/rules", headers=shop.auth).get_json()["rules"]
    shipped = next(r for r in rules_now if r["trigger"] == "shipped")
    url = f"/api/v1/rules/{shipped['id']}"
    assert client.delete(url, headers=shop.auth).status_code == 204

    listed = client.get("/api/v1/rules", headers=shop.auth).get_json()["rules"]
    assert shipped["id"] not in [r["id"] for r in listed]
    for method in (client.get, client.patch, client.delete):
        assert method(url, headers=shop.auth, json={}).status_code == 404
    assert client.get(url + "/preview", headers=shop.auth).status_code == 404
    document = client.get(f"/api/v1/orders/{ORDER}", headers=shop.auth).get_json()
    assert [m["rule"] for m in document["messages"]] == [shipped["name"]]
    log = client.get("/api/v1/notifications", headers=shop.auth).get_json()["notifications"]
    assert [m["rule"] for m in log] == [shipped["name"]]
    with Session(db) as session:
        assert session.get(Rule, shipped["id"]).enabled is False
    sign_in(client, shop.token)
    logged = client.get("/app/notifications").get_data(as_text=True)
    assert f"<td>{shipped['name']}</td>" in logged
    assert f'id="rule-{shipped["id"]}"' not in client.get("/app/rules").get_data(as_text=True)
    assert client.get(f"/app/rules/{shipped['id']}").status_code == 404


def test_home_counts_the_last_weeks_delays_and_how_many_were_told(
    shop, hook, sweep, send, clock, db, client
):
    sign_in(client, shop.token)
    assert "Delays found, last 7 days" not in client.get("/app/").get_data(as_text=True)
    hook("orders/paid", "orders_paid")
    clock.current = NOT_SHIPPED_DUE
    sweep()
    sign_in(client, shop.token)  # days later: a new session
    home = client.get("/app/").get_data(as_text=True)
    assert "0 of 1 told to the customer" in home  # the message has not left yet
    send()
    home = client.get("/app/").get_data(as_text=True)
    assert "Delays found, last 7 days" in home and "1 of 1 told to the customer" in home
    clock.current = NOT_SHIPPED_DUE + timedelta(days=8)
    sign_in(client, shop.token)
    assert "Delays found" not in client.get("/app/").get_data(as_text=True)
