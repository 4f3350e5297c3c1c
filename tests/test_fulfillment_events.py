"""Carrier scans on Shopify-native tracking (`fulfillment_events/create`)
land in the same shipment facts as the providers' events, newest first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from app.models import InboxMessage, OrderEvent, Shipment
from support import load_fixture, with_changes

EVENT = "fulfillment_events/create"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def parcel(db) -> Shipment:
    with Session(db) as session:
        return session.exec(select(Shipment)).one()


def scan(**changes) -> dict:
    return with_changes(load_fixture("shopify", "fulfillment_events_create"), **changes)


def shipment_timeline(db) -> list[tuple[str | None, str]]:
    with Session(db) as session:
        rows = session.exec(
            select(OrderEvent).where(OrderEvent.kind == "shipment").order_by(OrderEvent.id)
        ).all()
        return [(row.from_status, row.to_status) for row in rows]


def test_a_carrier_scan_moves_the_parcel_with_its_time_and_estimate(shop, db, deliver, work):
    deliver("orders/create", "orders_create")
    deliver("fulfillments/update", "fulfillments_update")  # in transit, 2026-11-21 10:30+01
    deliver(EVENT, "fulfillment_events_create")  # out for delivery, 2026-11-22 08:30+01
    work()

    shipment = parcel(db)
    assert shipment.status == "out_for_delivery"
    assert shipment.last_scan_at == at("2026-11-22T08:30:00+01:00")
    assert shipment.estimated_delivery_at == at("2026-11-22T18:00:00+01:00")
    assert shipment.status_detail == "Out for delivery in Madrid"
    assert shipment_timeline(db)[-1] == ("in_transit", "out_for_delivery")


def test_a_delivered_scan_records_when_it_was_delivered(shop, db, deliver, work):
    deliver("orders/create", "orders_create")
    deliver("fulfillments/update", "fulfillments_update")
    deliver(EVENT, scan(status="delivered", happened_at="2026-11-22T11:00:00+01:00"))
    work()

    shipment = parcel(db)
    assert (shipment.status, shipment.delivered_at) == (
        "delivered", at("2026-11-22T11:00:00+01:00"),
    )  # fmt: skip


def test_an_older_scan_never_overwrites_a_newer_one(shop, db, deliver, work):
    deliver("orders/create", "orders_create")
    deliver(EVENT, scan(id=9001002, status="delivered", happened_at="2026-11-22T11:00:00+01:00"))
    work()
    deliver(EVENT, "fulfillment_events_create")  # out for delivery at 08:30, arriving late
    work()

    shipment = parcel(db)
    assert shipment.status == "delivered"
    assert shipment.last_scan_at == at("2026-11-22T11:00:00+01:00")


def test_a_scan_older_than_the_fulfillments_own_update_changes_nothing(shop, db, deliver, work):
    deliver("orders/create", "orders_create")
    deliver("fulfillments/update", "fulfillments_update")  # in transit at 10:30+01 on the 21st
    deliver(EVENT, scan(status="label_printed", happened_at="2026-11-21T09:30:00+01:00"))
    work()

    assert parcel(db).status == "in_transit"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "teleported"}, "status 'teleported' is not a fulfillment event status"),
        ({"fulfillment_id": "six"}, "fulfillment_id must be an id (digits), not a string"),
        ({"happened_at": "yesterday"}, "happened_at is not an ISO 8601 timestamp"),
    ],
)
def test_a_bad_fulfillment_event_is_dead_lettered_with_its_reason(
    shop, db, deliver, work, change, reason
):
    assert deliver(EVENT, scan(**change)).status_code == 200
    work()
    with Session(db) as session:
        [message] = session.exec(select(InboxMessage)).all()
    assert (message.status, message.last_error) == ("dead", f"PayloadError: {reason}")
