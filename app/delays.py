"""Is an order late, and when could it next become late? Pure functions over
the order's facts, the promise and the shop's calendar; no clock, no
database (`app.delay_checks` is the part that reads and writes).

Causes, each at most once per order (`models.DelayEpisode`):

- not_shipped: no parcel has left by the promise (a label printed or a
  parcel held in the warehouse has not left), and the grace has passed;
- estimate_revised: the carrier's estimate moved past the promised day;
- estimate_passed: the estimated (or promised) day is over, undelivered;
- stalled: a parcel the carrier scanned has had no scan for N business days
  (home and abroad differ); a parcel never scanned is not "stalled";
- exception: a failed attempt, an exception, a hold or a return;
- tracking_problem: a parcel that left but whose carrier never scanned it,
  after a while: the merchant's problem to look at, not news for the customer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.business_days import add_business_days, end_of_local_day, local_date, parse_holidays
from app.events import ShipmentStatus
from app.models import Order, Shipment, Shop
from app.order_state import OrderState
from notifications.policy import zone

CLOSED = frozenset({OrderState.DELIVERED, OrderState.CANCELLED, OrderState.REFUNDED})
NOT_LEFT = frozenset({ShipmentStatus.LABEL_CREATED, ShipmentStatus.ON_HOLD})
GONE = frozenset({ShipmentStatus.CANCELLED})
DONE = frozenset({ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED})
TROUBLE = frozenset({ShipmentStatus.EXCEPTION, ShipmentStatus.ATTEMPTED, ShipmentStatus.ON_HOLD})
MOVING = frozenset(
    {ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.OUT_FOR_DELIVERY}
)
CUSTOMER_CAUSES = ("not_shipped", "estimate_revised", "estimate_passed", "stalled", "exception")
MERCHANT_CAUSES = ("tracking_problem",)


@dataclass(frozen=True)
class Calendar:
    """The shop's delay settings, read once per check."""

    tz: ZoneInfo
    holidays: frozenset[date]
    country: str
    processing_days: int
    transit_days: int
    transit_by_country: dict[str, int]
    stalled_days_home: int
    stalled_days_abroad: int
    grace: timedelta
    tracking_problem_after: timedelta

    @classmethod
    def of(cls, shop: Shop) -> Calendar:
        return cls(
            zone(shop.timezone, "UTC"), parse_holidays(shop.holidays or ""), shop.country,
            shop.processing_days, shop.transit_days,
            json.loads(shop.transit_days_by_country or "{}"),
            shop.stalled_days_home, shop.stalled_days_abroad,
            timedelta(hours=shop.not_shipped_grace_hours),
            timedelta(hours=shop.tracking_problem_hours),
        )  # fmt: skip

    def transit(self, country: str | None) -> int:
        return self.transit_by_country.get(country or "", self.transit_days)

    def stalled_days(self, country: str | None) -> int:
        home = country is None or country == self.country
        return self.stalled_days_home if home else self.stalled_days_abroad


@dataclass(frozen=True)
class Promise:
    ship_by: datetime | None  # the latest the items should leave
    deliver_by: datetime | None  # the latest they should arrive


def promise_for(order: Order, shipments: Sequence[Shipment], calendar: Calendar) -> Promise:
    """What the customer was promised. The one place that reads a promise:
    Shopify's own (`fulfillBy` and the delivery window of the fulfillment
    orders) goes first here when the order carries it; else a parcel's
    promised ship date; else the shop's processing time from the order's
    creation. Delivery: the first estimate we knew, else the ship-by plus
    the transit time to the order's country, in business days."""
    fulfill_by = order.fulfill_by
    window_max = order.delivery_max_at
    promised = [s.promised_ship_at for s in shipments if s.promised_ship_at]
    placed = order.shopify_created_at or order.created_at
    ship_by = fulfill_by or (min(promised) if promised else None)
    if ship_by is None and placed is not None:
        ship_by = add_business_days(
            placed, calendar.processing_days, calendar.tz, calendar.holidays
        )
    estimates = [s.first_estimated_delivery_at for s in shipments if s.first_estimated_delivery_at]
    deliver_by = window_max or (max(estimates) if estimates else None)
    if deliver_by is None:
        shipped = [s.shipped_at for s in shipments if s.shipped_at and s.status not in NOT_LEFT]
        start = max(shipped) if shipped else ship_by
        if start is not None:
            deliver_by = add_business_days(
                start, calendar.transit(order.shipping_country), calendar.tz, calendar.holidays
            )
    return Promise(ship_by, deliver_by)


@dataclass(frozen=True)
class Parcel:
    id: int
    status: str
    created_at: datetime
    shipped_at: datetime | None
    last_scan_at: datetime | None
    estimated_delivery_at: datetime | None

    @classmethod
    def of(cls, shipment: Shipment) -> Parcel:
        return cls(shipment.id, shipment.status, shipment.created_at, shipment.shipped_at,
                   shipment.last_scan_at, shipment.estimated_delivery_at)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    cause: str
    shipment_id: int | None
    promised_at: datetime | None
    expected_at: datetime | None = None


@dataclass(frozen=True)
class Assessment:
    findings: tuple[Finding, ...]
    next_check_at: datetime | None  # the earliest moment a new finding can be due


def assess(
    state: str, country: str | None, parcels: Sequence[Parcel], promise: Promise,
    calendar: Calendar, now: datetime, on_hold: bool = False,
) -> Assessment:  # fmt: skip
    """What is late about the order at `now`, and when to look again.
    `on_hold`: Shopify's fulfillment order is held by the warehouse (a
    warehouse hold is an exception, whichever source reports it)."""
    if state in CLOSED:
        return Assessment((), None)
    findings: dict[str, Finding] = {}
    later: list[datetime] = []

    def due(at: datetime, finding: Finding) -> None:
        if finding.cause in findings:
            return
        if at <= now:
            findings[finding.cause] = finding
        else:
            later.append(at)

    active = [p for p in parcels if p.status not in GONE]
    if on_hold and all(p.status in NOT_LEFT for p in active):
        due(now, Finding("exception", None, promise.deliver_by))
    if promise.ship_by is not None and all(p.status in NOT_LEFT for p in active):
        due(promise.ship_by + calendar.grace, Finding("not_shipped", None, promise.ship_by))
    for parcel in active:
        if parcel.status in DONE:
            continue
        if parcel.status in TROUBLE:
            due(now, Finding("exception", parcel.id, promise.deliver_by))
        if parcel.status in NOT_LEFT:
            continue
        estimate = parcel.estimated_delivery_at
        if (
            estimate is not None
            and promise.deliver_by is not None
            and local_date(estimate, calendar.tz) > local_date(promise.deliver_by, calendar.tz)
        ):
            due(now, Finding("estimate_revised", parcel.id, promise.deliver_by, estimate))
        expected = estimate or promise.deliver_by
        if expected is not None:
            due(
                end_of_local_day(expected, calendar.tz),
                Finding("estimate_passed", parcel.id, promise.deliver_by, expected),
            )
        if parcel.last_scan_at is not None and parcel.status in MOVING:
            days = calendar.stalled_days(country)
            due(
                add_business_days(parcel.last_scan_at, days, calendar.tz, calendar.holidays),
                Finding("stalled", parcel.id, promise.deliver_by),
            )
        if parcel.last_scan_at is None and parcel.status == ShipmentStatus.SHIPPED:
            since = parcel.shipped_at or parcel.created_at
            due(
                since + calendar.tracking_problem_after,
                Finding("tracking_problem", parcel.id, promise.deliver_by),
            )
    return Assessment(tuple(findings.values()), min(later, default=None))
