"""The order state machine, as plain functions over plain data.

Webhooks arrive twice, late and out of order (Shopify retries failed
deliveries for hours and does not guarantee ordering). Rather than applying
each event as a transition, we keep the newest snapshot of each fact an event
carries — the order itself and each shipment, compared by the `updated_at` the
sender stamped on it — and *derive* the order state from those facts. Keeping
the newest of each fact is commutative and idempotent, so any interleaving and
duplication of the same events ends in the same state as the in-order
sequence, and an older event can never move the state backwards.

States:

    pending ─> paid ─> partially_fulfilled ─> fulfilled ─> in_transit
        ─> out_for_delivery ─> delivered
    with delivery_exception (a shipment failed or is stuck), cancelled and
    refunded reachable from anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.events import ShipmentStatus


class OrderState(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    PARTIALLY_FULFILLED = "partially_fulfilled"
    FULFILLED = "fulfilled"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_EXCEPTION = "delivery_exception"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


# How far along a shipment is; used to combine several shipments into one
# order state (the order is as far along as its slowest parcel).
_SHIPMENT_PROGRESS = {
    ShipmentStatus.LABEL_CREATED: OrderState.FULFILLED,
    ShipmentStatus.SHIPPED: OrderState.FULFILLED,
    ShipmentStatus.IN_TRANSIT: OrderState.IN_TRANSIT,
    ShipmentStatus.OUT_FOR_DELIVERY: OrderState.OUT_FOR_DELIVERY,
    ShipmentStatus.AVAILABLE_FOR_PICKUP: OrderState.OUT_FOR_DELIVERY,
    ShipmentStatus.DELIVERED: OrderState.DELIVERED,
}
_PROGRESS_RANK = {
    OrderState.FULFILLED: 0,
    OrderState.IN_TRANSIT: 1,
    OrderState.OUT_FOR_DELIVERY: 2,
    OrderState.DELIVERED: 3,
}
_NOT_UNDER_WAY = {ShipmentStatus.CANCELLED, ShipmentStatus.ON_HOLD}
_TROUBLE = {ShipmentStatus.EXCEPTION, ShipmentStatus.ATTEMPTED, ShipmentStatus.RETURNED}
_PAID = {"paid", "partially_paid", "partially_refunded"}


@dataclass(frozen=True)
class OrderFacts:
    """What the newest order snapshot says; all None while we know the order
    only through a shipment that arrived before it."""

    financial_status: str | None = None
    fulfillment_status: str | None = None
    cancelled_at: datetime | None = None


def derive_state(order: OrderFacts, shipment_statuses: list[ShipmentStatus]) -> OrderState:
    """The order's state from its newest facts."""
    if order.cancelled_at is not None:
        return OrderState.CANCELLED
    if order.financial_status == "refunded":
        return OrderState.REFUNDED
    # A cancelled parcel does not count, nor one on hold in the warehouse:
    # it has not left, so the order is not fulfilled by it (the hold itself
    # stays visible on the shipment).
    active = [s for s in shipment_statuses if s not in _NOT_UNDER_WAY]
    if not active:
        if order.fulfillment_status == "partial":
            return OrderState.PARTIALLY_FULFILLED
        if order.fulfillment_status == "fulfilled":
            return OrderState.FULFILLED
        return OrderState.PAID if order.financial_status in _PAID else OrderState.PENDING
    if any(s in _TROUBLE for s in active):
        return OrderState.DELIVERY_EXCEPTION
    if order.fulfillment_status == "partial":
        return OrderState.PARTIALLY_FULFILLED
    return min((_SHIPMENT_PROGRESS[s] for s in active), key=_PROGRESS_RANK.__getitem__)


@dataclass(frozen=True)
class ParcelReport:
    """One source's latest word on a parcel; `parcel` is the tracking number
    when known, so that ShipBob, AfterShip and Shopify reporting the same
    parcel count once."""

    parcel: str
    stamp: datetime
    status: ShipmentStatus


_STATUS_ORDER = list(ShipmentStatus)


def parcel_statuses(reports: list[ParcelReport]) -> list[ShipmentStatus]:
    """One status per parcel: the newest report's (equal stamps: the one
    further along, so the result does not depend on arrival order)."""
    newest: dict[str, ParcelReport] = {}
    for report in reports:
        current = newest.get(report.parcel)
        if current is None or (report.stamp, _STATUS_ORDER.index(report.status)) > (
            current.stamp,
            _STATUS_ORDER.index(current.status),
        ):
            newest[report.parcel] = report
    return [report.status for report in newest.values()]


def is_newer(incoming: datetime, current: datetime | None) -> bool:
    """Whether a snapshot stamped `incoming` replaces one stamped `current`.

    Equal stamps keep what we have: Shopify's `updated_at` changes with every
    change to the resource, so an equal stamp is the same version again.
    """
    return current is None or incoming > current
