"""The seam between applying events and the rules: applying yields what
changed, and a rule can address a customer without an order."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from sqlmodel import Session, select

from app.changes import (
    CustomerFactChanged,
    OrderDetailsArrived,
    OrderStateChanged,
    ShipmentStageChanged,
)
from app.events import CustomerSnapshot
from app.models import Customer, Notification
from app.orders import Cause, apply
from app.rules import SHIPPING, Audience, notify
from integrations import shopify
from support import load_fixture

STAMP = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def apply_fixture(session: Session, shop_id: int, topic: str, name: str, now: datetime) -> list:
    changes = []
    cause = Cause(label=f"test:{topic}", inbox_id=None, now=now)
    for event in shopify.parse(topic, load_fixture("shopify", name), None):
        changes += apply(session, shop_id, event, cause)
    return changes


def test_applying_an_event_reports_each_change_once_and_a_replay_reports_none(db, shop, clock):
    with Session(db) as session:
        created = apply_fixture(session, shop.id, "orders/create", "orders_create", clock.now())
        assert [type(c) for c in created] == [OrderDetailsArrived]  # still pending: no state

        paid = apply_fixture(session, shop.id, "orders/paid", "orders_paid", clock.now())
        assert [(type(c), c.previous, c.current) for c in paid] == [
            (OrderStateChanged, "pending", "paid")
        ]

        fulfilled = apply_fixture(
            session, shop.id, "orders/fulfilled", "orders_fulfilled", clock.now()
        )
        stages = [c for c in fulfilled if isinstance(c, ShipmentStageChanged)]
        states = [c for c in fulfilled if isinstance(c, OrderStateChanged)]
        # The fixture's two parcels: one just shipped, one already scanned in transit.
        assert sorted((c.previous, c.current) for c in stages) == [
            (None, "in_transit"), (None, "shipped")
        ]  # fmt: skip
        assert [(c.previous, c.current) for c in states] == [("paid", "fulfilled")]

        again = apply_fixture(session, shop.id, "orders/fulfilled", "orders_fulfilled", clock.now())
        assert again == []
        session.commit()


def test_a_customer_fact_change_is_reported_only_when_the_value_changes(db, shop, clock):
    cause = Cause(label="test", inbox_id=None, now=clock.now())
    with Session(db) as session:
        first = CustomerSnapshot(42, STAMP, {"birth_date": date(1990, 4, 12)})
        [change] = apply(session, shop.id, first, cause)
        assert isinstance(change, CustomerFactChanged)
        assert (change.fact, change.previous, change.current) == (
            "birth_date", None, date(1990, 4, 12)
        )  # fmt: skip
        same = CustomerSnapshot(42, STAMP.replace(hour=10), {"birth_date": date(1990, 4, 12)})
        assert apply(session, shop.id, same, cause) == []
        session.commit()


def test_a_rule_can_tell_a_customer_who_has_no_order_once(db, shop, clock):
    with Session(db) as session:
        customer = Customer(
            shop_id=shop.id, shopify_id=77, email="ana@example.com", email_consent="subscribed",
            first_name="Ana", locale="es",
        )  # fmt: skip
        session.add(customer)
        session.flush()
        audience = Audience.of_customer(session, customer)
        assert notify(session, SHIPPING, audience, clock.now(), subject="birthday:2026", facts={})
        assert not notify(
            session, SHIPPING, audience, clock.now(), subject="birthday:2026", facts={}
        )
        session.commit()
        [queued] = session.exec(select(Notification)).all()
        customer_id = customer.id
    assert (queued.order_id, queued.customer_id) == (None, customer_id)
    assert (queued.recipient, queued.locale, queued.key) == (
        "ana@example.com", "es", "customer:77:shipping:birthday:2026"
    )  # fmt: skip
    assert json.loads(queued.context) == {"customer_first_name": "Ana"}
