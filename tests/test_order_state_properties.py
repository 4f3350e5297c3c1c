"""Property: any interleaving and duplication of one order's events ends in the
same state as the in-order sequence (through the real parser and database)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from app import worker
from app.demo import ANA, fulfillment_payload, order_payload
from app.models import InboxMessage, Order, Shipment
from app.order_state import OrderFacts, OrderState, ShipmentStatus, derive_state
from app.orders import Cause, apply
from integrations import shopify
from support import ON_POSTGRESQL

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SHIPMENT_PROGRESS = ["in_transit", "out_for_delivery", "attempted_delivery", "delivered", "failure"]
_order_ids = itertools.count(9_000_000)


@st.composite
def order_stories(draw):
    """A plausible life of one order, as (topic, payload-builder) in true time order.
    Builders take the order id so that the same story can be told twice."""
    story = []
    minute = itertools.count(1)

    def at() -> datetime:
        return START + timedelta(minutes=next(minute))

    created = START
    story.append(("orders/create", _order(created, at(), "pending", None)))
    if draw(st.booleans()):
        story.append(("orders/paid", _order(created, at(), "paid", None)))
    parcels = draw(st.integers(0, 2))
    for parcel in range(parcels):
        shipped = at()
        story.append(("fulfillments/create", _fulfillment(parcel, shipped, shipped, None)))
        for status in draw(st.lists(st.sampled_from(SHIPMENT_PROGRESS), max_size=3)):
            story.append(("fulfillments/update", _fulfillment(parcel, shipped, at(), status)))
    if parcels:
        status = draw(st.sampled_from(["partial", "fulfilled"]))
        story.append(("orders/updated", _order(created, at(), "paid", status)))
    if draw(st.booleans()):
        moment = at()
        story.append(
            ("orders/cancelled", _order(created, moment, "refunded", None, cancelled_at=moment))
        )
    return story


def _order(created, updated, financial, fulfillment, cancelled_at=None):
    return lambda order_id: order_payload(
        order_id,
        1000 + order_id % 1000,
        ANA,
        created,
        updated,
        financial_status=financial,
        fulfillment_status=fulfillment,
        cancelled_at=cancelled_at,
    )


def _fulfillment(parcel, created, updated, shipment_status):
    return lambda order_id: fulfillment_payload(
        order_id * 10 + parcel, order_id, created, updated, shipment_status
    )


def _tell(db, shop_id: int, order_id: int, story) -> tuple:
    for topic, build in story:
        with Session(db) as session:
            for event in shopify.parse(topic, build(order_id), None):
                apply(session, shop_id, event, Cause(f"shopify:{topic}", None, START))
            session.commit()
    return _outcome(db, shop_id, order_id)


def _outcome(db, shop_id: int, order_id: int) -> tuple:
    with Session(db) as session:
        order = session.exec(
            select(Order).where(Order.shop_id == shop_id, Order.shopify_id == order_id)
        ).one()
        shipments = session.exec(
            select(Shipment.external_id, Shipment.status)
            .where(Shipment.order_id == order.id)
            .order_by(Shipment.external_id)
        ).all()
        return (
            order.state,
            order.financial_status,
            order.fulfillment_status,
            order.cancelled_at,
            [(int(ext) - order_id * 10, status) for ext, status in shipments],
        )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(story=order_stories(), data=st.data())
def test_any_interleaving_and_duplication_ends_like_the_in_order_sequence(db, shop, story, data):
    shuffled = data.draw(st.permutations(story))
    duplicates = data.draw(st.lists(st.sampled_from(story), max_size=4))
    disorderly = data.draw(st.permutations(shuffled + duplicates))

    in_order = _tell(db, shop.id, next(_order_ids), story)
    out_of_order = _tell(db, shop.id, next(_order_ids), disorderly)

    assert out_of_order == in_order


@given(
    facts=st.builds(
        OrderFacts,
        financial_status=st.sampled_from([None, "pending", "authorized", "paid", "refunded"]),
        fulfillment_status=st.sampled_from([None, "partial", "fulfilled"]),
        cancelled_at=st.sampled_from([None, START]),
    ),
    shipments=st.lists(st.sampled_from(list(ShipmentStatus)), max_size=4),
)
def test_derived_state_does_not_depend_on_the_order_of_shipments(facts, shipments):
    state = derive_state(facts, shipments)
    assert state == derive_state(facts, list(reversed(shipments)))
    assert state in set(OrderState)


def test_slowest_parcel_sets_the_pace():
    facts = OrderFacts("paid", "fulfilled", None)
    statuses = [ShipmentStatus.DELIVERED, ShipmentStatus.IN_TRANSIT]
    assert derive_state(facts, statuses) == OrderState.IN_TRANSIT


def test_cancelled_parcels_do_not_count():
    facts = OrderFacts("paid", None, None)
    assert derive_state(facts, [ShipmentStatus.CANCELLED]) == OrderState.PAID


def _life(order_id: int) -> list[tuple[str, dict]]:
    """One order's life in true time order: two parcels, each delivered."""
    minute = itertools.count(1)

    def at() -> datetime:
        return START + timedelta(minutes=next(minute))

    story = [("orders/create", _order(START, at(), "pending", None)),
             ("orders/paid", _order(START, at(), "paid", None))]  # fmt: skip
    for parcel in (0, 1):
        shipped = at()
        story.append(("fulfillments/create", _fulfillment(parcel, shipped, shipped, None)))
        for status in ("in_transit", "out_for_delivery", "delivered"):
            story.append(("fulfillments/update", _fulfillment(parcel, shipped, at(), status)))
    story.append(("orders/updated", _order(START, at(), "paid", "fulfilled")))
    return [(topic, build(order_id)) for topic, build in story]


@ON_POSTGRESQL
def test_two_workers_on_one_orders_events_end_like_one_worker_in_order(db, shop, rt, deliver):
    in_order, concurrent = next(_order_ids), next(_order_ids)
    for topic, payload in _life(in_order):
        deliver(topic, payload)
        worker.drain(rt)
    # All stored first, newest first, then two workers take them at once.
    for topic, payload in reversed(_life(concurrent)):
        deliver(topic, payload)
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        worker.drain(rt)

    workers = [threading.Thread(target=run) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()

    with Session(db) as session:
        assert session.exec(select(InboxMessage.status).distinct()).all() == ["done"]
    assert _outcome(db, shop.id, concurrent) == _outcome(db, shop.id, in_order)
    assert _outcome(db, shop.id, in_order)[0] == "delivered"
