"""Proactive rules: who is told what, decided in the same transaction as the
change that makes it true. Rules subscribe to what applying an event changed
(`app.changes`, through `react`); each shop's rules are rows
(`app.rule_book`). Event-driven here: the shipping stages (shipped, out for
delivery, ready for pickup, delivered) and the end of an order's delays;
time-driven ones (delays, escalations) are `app.delay_checks`, which `react`
also asks to look at every order whose facts changed, so that an exception
is told at once and the order's next due time follows its newest facts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from app import delay_checks, rule_book
from app.audience import Audience, Rule, notify, replacing, subject_of
from app.changes import (
    Change,
    HoldChanged,
    OrderDetailsArrived,
    OrderStateChanged,
    PromiseChanged,
    ShipmentFactsChanged,
    ShipmentStageChanged,
)
from app.delays import CLOSED
from app.models import Notification, Order, Shipment
from app.order_state import OrderState, ShipmentStatus
from notifications import policy

__all__ = [
    "SHIPPING", "Audience", "Rule", "never_told", "no_longer_true", "notify", "react",
    "retell_stages", "settled", "shipped_news_at",
]  # fmt: skip

settled = rule_book.settled

# The built-in "shipped" message, for callers that need a rule without a
# shop's row (the seam's tests, a birthday greeting's shape).
SHIPPING = Rule("shipping", policy.TRANSACTIONAL, ("email", "sms"))
# A carrier's first scan may already say "out for delivery": the parcel has
# shipped all the same. Later stages (delivered, pickup) are other news.
UNDER_WAY = {ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.OUT_FOR_DELIVERY}
# News older than this is history (a replay, a late import): nobody wants a
# "your order has shipped" about a parcel that left days ago, nor an "out
# for delivery today" about yesterday.
STALE_AFTER = timedelta(hours=72)
STAGES: dict[str, tuple[ShipmentStatus, timedelta]] = {
    "out_for_delivery": (ShipmentStatus.OUT_FOR_DELIVERY, timedelta(hours=12)),
    "ready_for_pickup": (ShipmentStatus.AVAILABLE_FOR_PICKUP, STALE_AFTER),
    "delivered": (ShipmentStatus.DELIVERED, STALE_AFTER),
}

# How long an order whose parked provider events were just woken waits for
# them before the sweep checks its delays anyway.
PARKED_EVENTS_GRACE = timedelta(minutes=5)

_GONE = frozenset({OrderState.CANCELLED, OrderState.REFUNDED})
# Order states after which a message of this kind tells the customer
# something no longer true (or no longer wanted): "on its way" after the
# delivery, for one.
PASSED: dict[str, frozenset[str]] = {
    "shipping": CLOSED,
    "out_for_delivery": CLOSED,
    "ready_for_pickup": CLOSED,
    "delivered": _GONE,
    "delay": CLOSED,
    "delay_followup": _GONE,
}


def no_longer_true(kind: str, order: Order | None) -> str | None:
    """Why a queued message of `kind` about `order` must not go out now, or
    None. The worker asks just before sending, with the order as it is now."""
    if order is not None and order.state in PASSED.get(kind, ()):
        return f"no longer true: the order is {order.state} (the {kind} message came too late)"
    return None


def react(session: Session, changes: list[Change], now: datetime) -> None:
    """The rules' subscriptions to what applying an event changed. Called by
    whoever applied it (the inbox, reconciliation, the history import), in
    the same transaction, after the whole event: the order's state is final."""
    touched: dict[int, None] = {}
    awaiting: set[int] = set()  # orders whose parked provider events apply next
    for change in changes:
        match change:
            case ShipmentStageChanged():
                _shipment_changed(session, change, now)
                touched[change.order_id] = None
            case OrderDetailsArrived():
                _order_details_arrived(session, change.order_id, now)
                touched[change.order_id] = None
                if change.woke_parked:
                    awaiting.add(change.order_id)
            case OrderStateChanged() | ShipmentFactsChanged() | PromiseChanged() | HoldChanged():
                touched[change.order_id] = None
    for order_id in touched:
        order = session.get(Order, order_id)
        if order.snapshot_updated_at is None:
            continue  # who to tell is not known yet
        if order.state in CLOSED:
            delay_checks.order_closed(session, order, now)
        elif order_id in awaiting:
            # Its parcel's events wait in the inbox: checked without them,
            # an order that shipped long ago is "not shipped". They check
            # it as they apply; the sweep does if they never do.
            order.next_check_at = now + PARKED_EVENTS_GRACE
            session.add(order)
        else:
            delay_checks.check_order(session, order, now)


def _shipment_changed(session: Session, change: ShipmentStageChanged, now: datetime) -> None:
    order = session.get(Order, change.order_id)
    if order.snapshot_updated_at is None:
        # Shopify sent the fulfillment before the order: who to tell is not
        # known yet. `_order_details_arrived` decides when the order arrives.
        return
    shipment = session.get(Shipment, change.shipment_id)
    if change.current in UNDER_WAY and change.previous not in UNDER_WAY:
        _tell_shipped(session, order, shipment, change.occurred_at, now)
        return
    for trigger, (status, fresh_for) in STAGES.items():
        if change.current == status and shipment.status == status:
            _tell_stage(session, order, shipment, trigger, change.occurred_at, fresh_for, now)


def _order_details_arrived(session: Session, order_id: int, now: datetime) -> None:
    order = session.get(Order, order_id)
    shipment = _first_under_way(session, order)
    if shipment is not None:
        _tell_shipped(session, order, shipment, shipment.source_updated_at, now)


def _first_under_way(session: Session, order: Order) -> Shipment | None:
    """The order's first parcel under way: what "shipped" is about."""
    return session.exec(
        select(Shipment)
        .where(
            Shipment.shop_id == order.shop_id,
            Shipment.order_id == order.id,
            Shipment.status.in_(UNDER_WAY),
        )
        .order_by(Shipment.source_updated_at)
    ).first()


def shipped_news_at(shipment: Shipment, reported_at: datetime) -> datetime:
    """ "Shipped" is as old as the parcel's departure, whenever we heard of
    it: a tracking report sent today whose scans are nine days old (a
    tracking service catching up, a replay) is not news. Later stages keep
    the time of the report: a provider may change a status without a scan
    of its own, and its last scan is then older than the news."""
    known = [t for t in (shipment.shipped_at, shipment.last_scan_at) if t is not None]
    return min([reported_at, *known])


def never_told(order: Order) -> bool:
    """A cancelled or refunded order hears of no shipping stage."""
    return order.state in _GONE


def _tell_shipped(
    session: Session, order: Order, shipment: Shipment, happened_at: datetime, now: datetime,
    subject: str | None = None,
) -> None:  # fmt: skip
    _tell_stage(session, order, shipment, "shipped", shipped_news_at(shipment, happened_at),
                STALE_AFTER, now, subject=subject or f"order:{order.shopify_id}")  # fmt: skip


_STAGE_OF_KIND = {"shipping": "shipped", **{trigger: trigger for trigger in STAGES}}


def retell_stages(session: Session, withdrawn: list[Notification], now: datetime) -> None:
    """Stage messages withdrawn with their rule (switched off or deleted):
    each is decided again at once through the rule that now comes first for
    its order, if one applies and the news is still fresh, in a message
    keyed apart from the withdrawn one. The withdrawn rule must already be
    off (or gone) in `session`."""
    for notification in withdrawn:
        trigger = _STAGE_OF_KIND.get(notification.kind)
        if trigger is None or notification.order_id is None:
            continue
        order = session.get(Order, notification.order_id)
        subject = subject_of(notification.key, notification.kind)
        shipment = _shipment_of(session, order, subject)
        if shipment is None:
            continue
        again = replacing(subject, notification.id)
        if trigger == "shipped":
            _tell_shipped(session, order, shipment, shipment.source_updated_at, now, again)
            continue
        status, fresh_for = STAGES[trigger]
        if shipment.status == status:
            _tell_stage(session, order, shipment, trigger, shipment.source_updated_at, fresh_for,
                        now, again)  # fmt: skip


def _shipment_of(session: Session, order: Order, subject: str) -> Shipment | None:
    """The parcel a stage message was about: named in its subject
    ("shipment:<source>:<id>"), or for "shipped" (about the order) the
    order's first parcel under way."""
    if not subject.startswith("shipment:"):
        return _first_under_way(session, order)
    source, _, external_id = subject.removeprefix("shipment:").partition(":")
    return session.exec(
        select(Shipment).where(
            Shipment.shop_id == order.shop_id, Shipment.order_id == order.id,
            Shipment.source == source, Shipment.external_id == external_id,
        )
    ).first()  # fmt: skip


def _tell_stage(
    session: Session, order: Order, shipment: Shipment, trigger: str, happened_at: datetime,
    fresh_for: timedelta, now: datetime, subject: str | None = None,
) -> None:  # fmt: skip
    """Tell a shipping stage through the shop's enabled rule for it that
    applies to the order (`rule_book.choose`): once per parcel and stage
    ("shipped": once per order), never about news older than `fresh_for`."""
    if never_told(order):
        return
    rule = delay_checks.first_applicable(session, order, trigger)
    if rule is None:
        return
    if now - happened_at > fresh_for:
        delay_checks.note(session, order, f"rule {rule.name!r} not sent: stale (the news is "
                          f"from {happened_at:%Y-%m-%d %H:%M} UTC)", now)  # fmt: skip
        return
    subject = subject or f"shipment:{shipment.source}:{shipment.external_id}"
    audience = Audience.of_order(session, order)
    facts = delay_checks.shipment_facts(shipment)
    # Queued once: the outbox's unique key makes a second try (the order
    # and its parcel in one event) a no-op.
    notify(session, delay_checks.spec(rule), audience, now, subject=subject, facts=facts)
