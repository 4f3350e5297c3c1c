"""The promise and holds from Shopify's fulfillment orders: read with
GraphQL (reconciliation, the history import), moved by the
`fulfillment_orders/*` webhooks (which name no order and carry no ship-by
time), newest first, and reported to the rules as PromiseChanged and
HoldChanged."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from shopify_standin import installed_runtime, serving
from sqlmodel import Session, select

from app import delay_checks, reconcile
from app.changes import HoldChanged, PromiseChanged
from app.events import FulfillmentOrderSnapshot
from app.models import DelayEpisode, InboxMessage, Order, OrderEvent, ShopJob
from app.orders import RECONCILE_JOB, Cause, apply
from integrations.shopify_bulk import parse_record
from support import load_fixture, with_changes

TOKEN = "shpat_promise_test"
FO = "gid://shopify/FulfillmentOrder/1046000001"


@pytest.fixture
def standin():
    with serving(TOKEN) as standin:
        yield standin


@pytest.fixture
def rt(settings, db, clock, standin):
    return installed_runtime(settings, db, clock, standin, TOKEN, {"read_orders"})


def order_node(fulfillment_orders: list[dict], updated: str = "2026-11-22T10:00:00Z") -> dict:
    return {
        "id": "gid://shopify/Order/5001001", "name": "#1001", "createdAt": "2026-11-20T09:00:00Z",
        "updatedAt": updated, "cancelledAt": None, "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "UNFULFILLED", "currencyCode": "EUR",
        "totalPriceSet": {"shopMoney": {"amount": "83.85"}}, "email": "ana@example.com",
        "phone": None, "customerLocale": "es", "customer": None, "fulfillments": [],
        "fulfillmentOrders": {"edges": [{"node": node} for node in fulfillment_orders]},
    }  # fmt: skip


def fulfillment_order(status: str = "OPEN", updated: str = "2026-11-22T10:00:00Z", **extra):
    return {
        "id": FO, "status": status, "updatedAt": updated,
        "fulfillBy": "2026-11-23T17:00:00Z", "fulfillAt": None,
        "deliveryMethod": {"minDeliveryDateTime": "2026-11-25T08:00:00Z",
                           "maxDeliveryDateTime": "2026-11-27T20:00:00Z"},
        "fulfillmentHolds": [], **extra,
    }  # fmt: skip


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def the_order(db) -> Order:
    with Session(db) as session:
        return session.exec(select(Order).where(Order.shopify_id == 5001001)).one()


def hold_timeline(db) -> list[tuple[str | None, str]]:
    with Session(db) as session:
        rows = session.exec(
            select(OrderEvent).where(OrderEvent.kind == "hold").order_by(OrderEvent.id)
        ).all()
        return [(row.from_status, row.to_status) for row in rows]


def reconcile_now(rt, shop, standin, *nodes) -> None:
    standin.orders = list(nodes)
    reconcile.reconcile_shop(rt, shop.id, rt.clock.now() - reconcile.WINDOW)


def test_reconciliation_reads_the_ship_by_time_and_the_promised_delivery_window(
    rt, shop, standin, db
):
    reconcile_now(rt, shop, standin, order_node([fulfillment_order()]))

    order = the_order(db)
    assert order.fulfill_by == at("2026-11-23T17:00:00+00:00")
    assert (order.delivery_min_at, order.delivery_max_at) == (
        at("2026-11-25T08:00:00+00:00"), at("2026-11-27T20:00:00+00:00"),
    )  # fmt: skip
    assert order.on_hold is False


def test_a_hold_and_its_release_from_webhooks_move_the_order_and_its_timeline(
    rt, shop, standin, db, deliver, work
):
    reconcile_now(rt, shop, standin, order_node([fulfillment_order()]))

    deliver("fulfillment_orders/placed_on_hold", "fulfillment_orders_placed_on_hold",
            triggered_at="2026-11-22T11:00:00Z")  # fmt: skip
    work()
    held = the_order(db)
    assert (held.on_hold, held.hold_reason) == (True, "inventory_out_of_stock")
    assert held.hold_changed_at == at("2026-11-22T11:00:00+00:00")
    assert held.fulfill_by == at("2026-11-23T17:00:00+00:00")  # a hold keeps the promise

    deliver("fulfillment_orders/hold_released", "fulfillment_orders_hold_released",
            triggered_at="2026-11-22T11:30:00Z")  # fmt: skip
    work()
    released = the_order(db)
    assert (released.on_hold, released.hold_reason) == (False, None)
    assert hold_timeline(db) == [("released", "on_hold"), ("on_hold", "released")]


def test_an_older_hold_never_overwrites_a_newer_fulfillment_order(
    rt, shop, standin, db, deliver, work
):
    reconcile_now(rt, shop, standin,
                  order_node([fulfillment_order(updated="2026-11-22T11:50:00Z")]))  # fmt: skip

    deliver("fulfillment_orders/placed_on_hold", "fulfillment_orders_placed_on_hold",
            triggered_at="2026-11-22T11:00:00Z")  # fmt: skip
    work()

    assert the_order(db).on_hold is False
    assert hold_timeline(db) == []


def test_a_hold_on_a_fulfillment_order_not_read_yet_waits_until_reconciliation_reads_it(
    rt, shop, standin, db, deliver, work
):
    deliver("fulfillment_orders/placed_on_hold", "fulfillment_orders_placed_on_hold",
            triggered_at="2026-11-22T11:00:00Z")  # fmt: skip
    work()
    with Session(db) as session:
        [message] = session.exec(select(InboxMessage)).all()
    assert message.status == "parked"  # the webhook names no order

    reconcile_now(rt, shop, standin, order_node([fulfillment_order()]))
    work()

    assert the_order(db).on_hold is True


def test_a_signal_of_a_new_deadline_without_it_queues_one_reconciliation_a_minute(
    rt, shop, standin, db, deliver, work
):
    reconcile_now(rt, shop, standin, order_node([fulfillment_order()]))
    for topic in ("fulfillment_request_accepted", "order_routing_complete"):
        deliver(f"fulfillment_orders/{topic}", f"fulfillment_orders_{topic}")
    work_until_inbox_done(rt)

    with Session(db) as session:
        jobs = session.exec(select(ShopJob).where(ShopJob.kind == RECONCILE_JOB)).all()
    assert [job.slot for job in jobs] == ["signal:2026-11-22T12:00"]


def work_until_inbox_done(rt) -> None:
    """Process the inbox only (the queued reconciliation is the assertion)."""
    from app import inbox

    while inbox.process_next(rt.engine, rt.clock.now(), 5) is not None:
        pass


def test_a_reschedule_moves_the_fulfill_at_and_a_later_graphql_read_the_rest(
    rt, shop, standin, db, deliver, work
):
    reconcile_now(rt, shop, standin, order_node([fulfillment_order()]))
    deliver("fulfillment_orders/rescheduled", "fulfillment_orders_rescheduled",
            triggered_at="2026-11-22T11:00:00Z")  # fmt: skip
    work()
    later = fulfillment_order(updated="2026-11-22T11:40:00Z", fulfillBy="2026-11-24T17:00:00Z")
    reconcile_now(rt, shop, standin, order_node([later], updated="2026-11-22T11:40:00Z"))

    assert the_order(db).fulfill_by == at("2026-11-24T17:00:00+00:00")


def test_applying_a_fulfillment_order_reports_promise_and_hold_changes(rt, shop, db):
    stamp = at("2026-11-22T10:00:00+00:00")
    cause = Cause("test", None, rt.clock.now())
    [first] = [e for e in parse_record(order_node([fulfillment_order()])) if
               isinstance(e, FulfillmentOrderSnapshot)]  # fmt: skip
    held = dataclasses.replace(first, status="on_hold", hold_reason="other",
                               updated_at=stamp + timedelta(minutes=5))  # fmt: skip
    with Session(db) as session:
        promised = apply(session, shop.id, first, cause)
        holding = apply(session, shop.id, held, cause)
        again = apply(session, shop.id, held, cause)
        order_id = session.exec(select(Order.id)).one()
        session.commit()

    assert promised == [PromiseChanged(order_id, at("2026-11-23T17:00:00+00:00"),
                                       at("2026-11-25T08:00:00+00:00"),
                                       at("2026-11-27T20:00:00+00:00"), stamp)]  # fmt: skip
    assert holding == [HoldChanged(order_id, True, "other", stamp + timedelta(minutes=5))]
    assert again == []  # a duplicate changes nothing


def test_a_closed_fulfillment_order_promises_nothing_any_more(rt, shop, standin, db):
    reconcile_now(rt, shop, standin, order_node([fulfillment_order()]))
    closed = fulfillment_order(status="CLOSED", updated="2026-11-22T11:00:00Z")
    reconcile_now(rt, shop, standin, order_node([closed], updated="2026-11-22T11:00:00Z"))

    assert the_order(db).fulfill_by is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"fulfillment_order": {"id": "gid://shopify/Order/1", "status": "open"}},
         "fulfillment_order.id is not the id of a FulfillmentOrder"),
        ({"fulfillment_order": {"id": FO}}, "fulfillment_order.status is required"),
        ({"fulfillment_order": {"id": FO, "status": ["open"]}},
         "fulfillment_order.status must be a string, not a list"),
    ],
)  # fmt: skip
def test_a_bad_fulfillment_order_payload_is_dead_lettered_with_its_reason(
    shop, db, deliver, work, change, reason
):
    payload = with_changes(load_fixture("shopify", "fulfillment_orders_hold_released"), **change)
    assert deliver("fulfillment_orders/hold_released", payload).status_code == 200
    work()
    with Session(db) as session:
        [message] = session.exec(select(InboxMessage)).all()
    assert (message.status, message.last_error) == ("dead", f"PayloadError: {reason}")


def test_a_bulk_export_line_of_a_fulfillment_order_names_its_order_by_parent():
    holds = [{"reason": "HIGH_RISK_OF_FRAUD"}]
    line = {**fulfillment_order(status="ON_HOLD", fulfillmentHolds=holds),
            "__parentId": "gid://shopify/Order/5001001"}  # fmt: skip
    [snapshot] = parse_record(json.loads(json.dumps(line)))
    assert (snapshot.order_shopify_id, snapshot.status, snapshot.hold_reason) == (
        5001001, "on_hold", "high_risk_of_fraud",
    )  # fmt: skip


# --- what the rules make of them -----------------------------------------------------


def episodes(db) -> dict[str, DelayEpisode]:
    with Session(db) as session:
        return {e.cause: e for e in session.exec(select(DelayEpisode)).all()}


def test_a_warehouse_hold_is_a_delay_the_rules_record_at_once(rt, shop, standin, db, deliver, work):
    reconcile_now(rt, shop, standin, order_node([fulfillment_order()]))
    assert "exception" not in episodes(db)
    deliver("fulfillment_orders/placed_on_hold", "fulfillment_orders_placed_on_hold",
            triggered_at="2026-11-22T11:00:00Z")  # fmt: skip
    work()
    held = episodes(db)["exception"]
    assert held.shipment_id is None  # the order's hold, not a parcel's
    assert held.promised_at == at("2026-11-27T20:00:00+00:00")  # the promised window's end


def test_shopifys_ship_by_time_is_the_promise_a_late_order_is_measured_against(
    rt, shop, standin, db, clock
):
    reconcile_now(rt, shop, standin, order_node([fulfillment_order()]))
    grace = timedelta(hours=72)  # the shop's default: no alert earlier than this past the promise
    clock.current = at("2026-11-23T17:00:00+00:00") + grace - timedelta(minutes=1)
    delay_checks.sweep(db, shop.id, clock.now())
    assert "not_shipped" not in episodes(db)
    clock.current += timedelta(minutes=2)
    delay_checks.sweep(db, shop.id, clock.now())
    late = episodes(db)["not_shipped"]
    assert late.promised_at == at("2026-11-23T17:00:00+00:00")  # fulfillBy, not our 2 days
