"""Webhooks into order state: the state machine through the real path
(HTTP -> inbox -> worker -> database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from app import inbox
from app.events import CustomerSnapshot, PayloadError
from app.models import Customer, InboxMessage, Order, OrderEvent, Shipment
from support import ON_POSTGRESQL, load_fixture, with_changes

ORDER_ID = 5001001
CUSTOMER_ID = 7001001


def order_row(db, shopify_id: int = ORDER_ID) -> Order:
    with Session(db) as session:
        return session.exec(select(Order).where(Order.shopify_id == shopify_id)).one()


def customer_row(db, shopify_id: int = CUSTOMER_ID) -> Customer:
    with Session(db) as session:
        return session.exec(select(Customer).where(Customer.shopify_id == shopify_id)).one()


def timeline(db, shopify_id: int = ORDER_ID) -> list[tuple[str, str | None, str]]:
    with Session(db) as session:
        order = session.exec(select(Order).where(Order.shopify_id == shopify_id)).one()
        events = session.exec(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
        ).all()
        return [(e.kind, e.from_status, e.to_status) for e in events]


def inbox_statuses(db) -> list[str]:
    with Session(db) as session:
        return list(session.exec(select(InboxMessage.status).order_by(InboxMessage.id)).all())


def test_order_moves_through_its_life_in_order(shop, deliver, work, db):
    steps = [
        ("orders/create", "orders_create", "pending"),
        ("orders/paid", "orders_paid", "paid"),
        ("orders/updated", "orders_updated", "paid"),
        ("orders/partially_fulfilled", "orders_partially_fulfilled", "partially_fulfilled"),
        ("orders/fulfilled", "orders_fulfilled", "fulfilled"),
    ]
    for topic, fixture, state in steps:
        assert deliver(topic, fixture).status_code == 200
        work()
        assert order_row(db).state == state, topic

    assert [t for t in timeline(db) if t[0] == "state"] == [
        ("state", None, "pending"),
        ("state", "pending", "paid"),
        ("state", "paid", "partially_fulfilled"),
        ("state", "partially_fulfilled", "fulfilled"),
    ]
    assert set(inbox_statuses(db)) == {"done"}


def test_shipment_updates_move_a_fulfilled_order_to_in_transit_and_delivered(
    shop, deliver, work, db
):
    deliver("orders/fulfilled", "orders_fulfilled")
    work()
    fulfillment = load_fixture("shopify", "fulfillments_update")
    deliver("fulfillments/update", fulfillment)
    other = fulfillment | {
        "id": 6001002,
        "tracking_number": "1Z999AA10123456795",
        "updated_at": "2026-11-21T13:00:00+01:00",  # after the order snapshot's copy
    }
    deliver("fulfillments/update", other)
    work()
    assert order_row(db).state == "in_transit"

    later = (fulfillment["updated_at"][:11]) + "18:00:00+01:00"
    deliver(
        "fulfillments/update", fulfillment | {"shipment_status": "delivered", "updated_at": later}
    )
    work()
    assert order_row(db).state == "in_transit"  # the second parcel is still travelling

    deliver("fulfillments/update", other | {"shipment_status": "delivered", "updated_at": later})
    work()
    assert order_row(db).state == "delivered"
    with Session(db) as session:
        shipments = session.exec(select(Shipment).order_by(Shipment.external_id)).all()
    assert [(s.external_id, s.status, s.carrier) for s in shipments] == [
        ("6001001", "delivered", "UPS"),
        ("6001002", "delivered", "UPS"),
    ]


def test_failed_delivery_attempt_is_a_delivery_exception(shop, deliver, work, db):
    deliver("orders/fulfilled", "orders_fulfilled")
    fulfillment = load_fixture("shopify", "fulfillments_update")
    later = fulfillment["updated_at"][:11] + "20:00:00+01:00"
    deliver(
        "fulfillments/update", fulfillment | {"shipment_status": "failure", "updated_at": later}
    )
    work()
    assert order_row(db).state == "delivery_exception"


def test_duplicate_deliveries_change_nothing(shop, deliver, work, db):
    deliver("orders/create", "orders_create")
    deliver("orders/paid", "orders_paid")
    work()
    before = (order_row(db).state, timeline(db))

    # Shopify re-sends the same events under new webhook ids (a retry after a
    # timeout looks like this); they are stored but change nothing.
    deliver("orders/paid", "orders_paid")
    deliver("orders/create", "orders_create")
    work()

    assert (order_row(db).state, timeline(db)) == before


def test_older_update_never_moves_state_back(shop, deliver, work, db):
    deliver("orders/fulfilled", "orders_fulfilled")
    work()
    deliver("orders/paid", "orders_paid")  # older updated_at, delivered late
    deliver("orders/create", "orders_create")
    work()

    order = order_row(db)
    assert order.state == "fulfilled"
    assert order.financial_status == "paid"
    assert order.fulfillment_status == "fulfilled"


def test_update_for_an_order_never_seen_still_ends_in_the_right_state(shop, deliver, work, db):
    deliver("fulfillments/update", "fulfillments_update")  # before any orders/* topic
    work()
    assert order_row(db).state == "in_transit"
    assert order_row(db).snapshot_updated_at is None  # known only through its shipment

    deliver("orders/create", "orders_create")  # the order itself, late
    work()
    order = order_row(db)
    assert order.name == "#1001"
    assert order.state == "in_transit"


def test_cancelled_order_is_cancelled_whatever_arrives_after(shop, deliver, work, db):
    deliver("orders/paid", "orders_paid")
    deliver("orders/cancelled", "orders_cancelled")
    deliver("orders/updated", "orders_updated")  # older
    work()
    assert order_row(db).state == "cancelled"
    assert order_row(db).cancelled_at is not None


def test_refund_without_cancel_is_refunded(shop, deliver, work, db):
    paid = load_fixture("shopify", "orders_paid")
    deliver("orders/paid", paid)
    refunded = with_changes(
        paid, financial_status="refunded", updated_at="2026-11-23T10:00:00+01:00"
    )
    deliver("orders/updated", refunded)
    work()
    assert order_row(db).state == "refunded"


def test_order_links_its_customer_with_locale_from_the_order(shop, deliver, work, db):
    deliver("orders/create", "orders_create")
    work()
    customer = customer_row(db)
    assert order_row(db).customer_id == customer.id
    assert (customer.email, customer.first_name, customer.locale) == (
        "ana@example.com",
        "Ana",
        "es",
    )


def test_customer_update_replaces_fields_but_older_one_is_ignored(shop, deliver, work, db):
    deliver("customers/update", "customers_update")
    deliver("customers/create", "customers_create")  # older, arrives after
    work()
    assert customer_row(db).phone == load_fixture("shopify", "customers_update")["phone"]


def test_order_embedded_customer_does_not_blank_known_fields(shop, deliver, work, db):
    deliver("customers/create", "customers_create")
    work()
    # A newer order whose embedded customer carries only some fields (orders
    # embed fewer than customers/* send): what it leaves out stays as known.
    order = load_fixture("shopify", "orders_create")
    embedded = {"id": CUSTOMER_ID, "updated_at": "2026-11-30T10:00:00+01:00",
                "email": "ana.new@example.com"}  # fmt: skip
    deliver("orders/create", order | {"customer": embedded})
    work()
    customer = customer_row(db)
    assert (customer.phone, customer.first_name, customer.last_name) == (
        "+34612345678",
        "Ana",
        "García",
    )
    assert (customer.email, customer.locale) == ("ana.new@example.com", "es")


@pytest.mark.parametrize(
    ("topic", "fixture", "field"),
    [
        (
            "customers_email_marketing_consent/update",
            "customers_email_marketing_consent_update",
            "email",
        ),
        ("customers_marketing_consent/update", "customers_marketing_consent_update", "sms"),
    ],
)
def test_marketing_consent_is_recorded_and_an_older_change_is_ignored(
    shop, deliver, work, db, topic, fixture, field
):
    payload = load_fixture("shopify", fixture)
    key = f"{field}_marketing_consent"
    deliver(topic, payload)
    older = payload | {
        key: payload[key] | {"state": "unsubscribed", "consent_updated_at": "2020-01-01T00:00:00Z"}
    }
    deliver(topic, older)
    work()
    customer = customer_row(db)
    assert getattr(customer, f"{field}_consent") == payload[key]["state"]

    newer = payload | {
        key: payload[key] | {"state": "unsubscribed", "consent_updated_at": "2027-01-01T00:00:00Z"}
    }
    deliver(topic, newer)
    work()
    assert getattr(customer_row(db), f"{field}_consent") == "unsubscribed"


def test_payload_that_can_never_be_understood_is_dead_lettered_at_once(shop, deliver, work, db):
    payload = load_fixture("shopify", "orders_create")
    del payload["id"]
    assert deliver("orders/create", payload).status_code == 200
    work()
    with Session(db) as session:
        message = session.exec(select(InboxMessage)).one()
    assert (message.status, message.attempts) == ("dead", 1)
    assert "PayloadError" in message.last_error and "id" in message.last_error


class FlakySource:
    """A stand-in integration whose processing fails a given number of times."""

    failures_left = 0

    @classmethod
    def parse(cls, topic, payload, triggered_at):
        if cls.failures_left > 0:
            cls.failures_left -= 1
            raise ConnectionError("upstream timed out")
        if payload.get("broken"):
            raise PayloadError("unreadable")
        return []

    @staticmethod
    def references(topic, payload):
        return None, None


def _store_flaky(rt, shop, now, delivery_id="d1", body="{}"):
    delivery = inbox.Delivery(
        "flaky", shop.domain, "thing/happened", delivery_id, None, None, None, body
    )
    assert (
        inbox.store(rt.engine, delivery, now, allow_uninstalled=False) == inbox.StoreResult.STORED
    )


def test_transient_failure_is_retried_with_backoff_then_succeeds(
    shop, rt, clock, monkeypatch, work, db
):
    monkeypatch.setitem(inbox.PARSERS, "flaky", FlakySource)
    monkeypatch.setattr(FlakySource, "failures_left", 2)
    _store_flaky(rt, shop, clock.now())

    work()
    with Session(db) as session:
        message = session.exec(select(InboxMessage)).one()
    assert (message.status, message.attempts) == ("pending", 1)
    assert "ConnectionError: upstream timed out" in message.last_error
    first_delay = message.next_attempt_at - clock.now()
    assert timedelta(seconds=10) <= first_delay <= timedelta(seconds=12)

    assert work() == 0  # not due yet
    clock.advance(seconds=13)
    work()
    clock.advance(seconds=25)
    work()
    with Session(db) as session:
        message = session.exec(select(InboxMessage)).one()
    assert (message.status, message.attempts, message.last_error) == ("done", 3, None)


def test_failures_end_in_the_dead_letters_after_max_attempts(
    shop, rt, clock, monkeypatch, work, db
):
    monkeypatch.setitem(inbox.PARSERS, "flaky", FlakySource)
    monkeypatch.setattr(FlakySource, "failures_left", 100)
    _store_flaky(rt, shop, clock.now())

    for _ in range(rt.settings.inbox_max_attempts):
        work()
        clock.advance(hours=2)
    with Session(db) as session:
        message = session.exec(select(InboxMessage)).one()
    assert (message.status, message.attempts) == ("dead", rt.settings.inbox_max_attempts)

    # Visible and retriable by hand; it succeeds once the cause is gone.
    FlakySource.failures_left = 0
    assert inbox.retry_dead(rt.engine, shop.id, [message.id], clock.now()) == 1
    work()
    assert inbox_statuses(db) == ["done"]


def test_one_failing_message_does_not_block_the_others(
    shop, rt, clock, monkeypatch, work, deliver, db
):
    monkeypatch.setitem(inbox.PARSERS, "flaky", FlakySource)
    _store_flaky(rt, shop, clock.now(), body='{"broken": true}')
    deliver("orders/create", "orders_create")
    work()
    assert inbox_statuses(db) == ["dead", "done"]
    assert order_row(db).state == "pending"


def _deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"customer": "ana@example.com"}, "customer must be an object, not a string"),
        ({"name": "#" + "1" * 64}, "name is longer than 64 characters"),
        ({"financial_status": {"paid": True}}, "financial_status must be a string, not an object"),
        ({"name": "#10\x0001"}, "name contains a NUL character"),
        ({"id": 2**63}, "id is out of range for an id"),
        ({"total_price": 1e20}, "total_price is out of range for an amount"),
        ({"updated_at": "9999-12-31T23:00:00-05:00"}, "updated_at is out of range"),
        ({"customer_locale": "x" * 40}, "customer_locale is longer than 16 characters"),
        ({"fulfillments": [{"id": "two"}]}, "fulfillments[0].id must be an id"),
    ],
)
def test_malformed_payload_is_dead_lettered_at_once_with_a_readable_reason(
    shop, other_shop, deliver, work, db, changes, reason
):
    assert (
        deliver(
            "orders/create", with_changes(load_fixture("shopify", "orders_create"), **changes)
        ).status_code
        == 200
    )
    deliver("orders/create", "orders_create", domain=other_shop.domain)
    work()
    with Session(db) as session:
        bad, good = session.exec(select(InboxMessage).order_by(InboxMessage.id)).all()
    assert (bad.status, bad.attempts) == ("dead", 1)
    assert bad.last_error.startswith(f"PayloadError: {reason}")
    assert good.status == "done"


def test_a_deeply_nested_field_we_do_not_read_is_no_error(shop, deliver, work, db):
    body = json.dumps(load_fixture("shopify", "orders_create")).encode()
    body = body[:-1] + b', "note_attributes": ' + _deeply_nested(1000) + b"}"
    assert deliver("orders/create", body).status_code == 200
    work()
    assert inbox_statuses(db) == ["done"]


class OverlongSource:
    """A stand-in integration whose parser lets through a value too long for
    its column (customers.locale is VARCHAR(16))."""

    @staticmethod
    def parse(topic, payload, triggered_at):
        stamp = datetime(2026, 11, 20, tzinfo=UTC)
        return [CustomerSnapshot(CUSTOMER_ID, stamp, {"locale": "x" * 40})]

    @staticmethod
    def references(topic, payload):
        return None, None


@ON_POSTGRESQL
def test_a_value_the_database_refuses_is_dead_lettered_at_once(
    shop, rt, clock, monkeypatch, work, db
):
    monkeypatch.setitem(inbox.PARSERS, "overlong", OverlongSource)
    delivery = inbox.Delivery(
        "overlong", shop.domain, "thing/happened", "d1", None, None, None, "{}"
    )
    inbox.store(rt.engine, delivery, clock.now(), allow_uninstalled=False)
    work()
    with Session(db) as session:
        message = session.exec(select(InboxMessage)).one()
    assert (message.status, message.attempts) == ("dead", 1)
    assert message.last_error.startswith("DataError:")
