"""Orders and their state: where a domain event is applied, and where an
order's state changes (`_recompute_state`, from the pure rules in
`app.order_state`). Customers and consent are `app.customers`; erasure and
data requests are `app.privacy`; waking parked events is `app.parked`.

The caller owns the transaction: these functions flush but never commit, so
that a state change and whatever it causes (timeline rows now, outbox rows
later) commit together or not at all. `apply` returns what changed
(`app.changes`); the caller hands that to the rules in the same transaction.

Rows an event touches are locked (`SELECT ... FOR UPDATE` on PostgreSQL;
SQLite has a single writer) after an insert-if-missing, so that two workers
handling two events of one order serialise instead of losing an update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, select

from app.changes import (
    Change,
    HoldChanged,
    OrderDetailsArrived,
    OrderStateChanged,
    PromiseChanged,
    ShipmentFactsChanged,
    ShipmentStageChanged,
)
from app.customers import apply_consent, apply_customer
from app.db import insert_ignoring_conflicts
from app.events import (
    BulkOperationFinished,
    ConsentChange,
    CustomerDataRequest,
    CustomerRedaction,
    CustomerSnapshot,
    Event,
    FulfillmentOrderSnapshot,
    OrderMatch,
    OrderSnapshot,
    ShipmentSnapshot,
    ShopRedaction,
    ShopUninstalled,
    TicketSnapshot,
    order_number,
)
from app.models import (
    FulfillmentOrder,
    HistoryImport,
    LineItem,
    Order,
    OrderEvent,
    Shipment,
    Shop,
)
from app.order_state import (
    OrderFacts,
    OrderState,
    ParcelReport,
    ShipmentStatus,
    derive_state,
    is_newer,
    parcel_statuses,
)
from app.parked import wake_parked
from app.privacy import erase_shop, record_data_request, redact_customer
from app.retention_facts import refresh_customers
from app.shop_jobs import enqueue_once
from app.shop_tokens import forget_tokens
from app.tickets import apply_ticket


@dataclass(frozen=True)
class Cause:
    """Why a change happened, for the timeline."""

    label: str  # e.g. "shopify:orders/paid"
    inbox_id: int | None
    now: datetime


def apply(session: Session, shop_id: int, event: Event, cause: Cause) -> list[Change]:
    """Apply one event; returns what it changed, for the rules."""
    changes: list[Change] = []
    match event:
        case OrderSnapshot():
            _apply_order(session, shop_id, event, cause, changes)
        case ShipmentSnapshot():
            if event.order_shopify_id is not None:
                order = _lock_order(
                    session, shop_id, event.order_shopify_id, cause, event.updated_at
                )
            else:
                order = _find_order(session, shop_id, event.match)
            _apply_shipment(session, order, event, cause, changes)
            _recompute_state(session, order, cause, event.updated_at, changes)
        case CustomerSnapshot():
            apply_customer(session, shop_id, event, changes, cause.now)
        case FulfillmentOrderSnapshot():
            _apply_fulfillment_order(session, shop_id, event, cause, changes)
        case TicketSnapshot():  # helpdesks and our API: app.tickets
            apply_ticket(session, shop_id, event, cause.now)
        case ConsentChange():
            apply_consent(session, shop_id, event)
        case ShopUninstalled():
            # Stops every send at once (senders check uninstalled_at) and
            # drops the Shopify tokens, which Shopify has revoked anyway.
            shop = session.get(Shop, shop_id)
            shop.uninstalled_at = cause.now
            forget_tokens(shop)
            session.add(shop)
        case CustomerRedaction():
            redact_customer(
                session, shop_id, event.customer_shopify_id, event.order_shopify_ids, cause.now
            )
        case CustomerDataRequest():
            record_data_request(session, shop_id, event, cause.now)
        case ShopRedaction():
            erase_shop(session, shop_id)
        case BulkOperationFinished():
            # The history import's worker step picks it up from here.
            session.exec(
                update(HistoryImport)
                .where(
                    HistoryImport.shop_id == shop_id,
                    HistoryImport.bulk_operation_id == event.operation_id,
                    HistoryImport.status == "running",
                )
                .values(
                    status="ready" if event.status == "completed" else "failed",
                    error=None if event.status == "completed"
                    else f"bulk operation {event.status}: {event.error_code}",
                    updated_at=cause.now,
                )
            )  # fmt: skip
        case _:
            raise TypeError(f"no handler for {type(event).__name__}")
    return changes


def _apply_order(
    session: Session, shop_id: int, snap: OrderSnapshot, cause: Cause, changes: list[Change]
) -> None:
    customer = (
        apply_customer(session, shop_id, snap.customer, changes, cause.now)
        if snap.customer
        else None
    )
    order = _lock_order(
        session, shop_id, snap.shopify_id, cause, snap.created_at or snap.updated_at
    )
    # Provider events parked for this order wait for its id or its name: both
    # become known with the order's first snapshot.
    first_snapshot = order.snapshot_updated_at is None
    if is_newer(snap.updated_at, order.snapshot_updated_at):
        previous_customer = order.customer_id
        redacted = order.redacted_at is not None or (customer and customer.redacted_at)
        order.name = snap.name
        order.financial_status = snap.financial_status
        order.fulfillment_status = snap.fulfillment_status
        order.cancelled_at = snap.cancelled_at
        order.currency = snap.currency
        order.total_price = snap.total_price
        order.shopify_created_at = snap.created_at
        order.email = None if redacted else snap.email
        order.phone = None if redacted else snap.phone
        order.snapshot_updated_at = snap.updated_at
        order.test = snap.test
        order.shipping_country = snap.shipping_country
        order.shipping_method = snap.shipping_method
        order.tags = snap.tags
        if customer is not None:
            order.customer_id = customer.id
        refresh_customers(session, shop_id, (previous_customer, order.customer_id))
        _replace_line_items(session, order, snap)
    for shipment in snap.shipments:
        _apply_shipment(session, order, shipment, cause, changes)
    _recompute_state(session, order, cause, snap.updated_at, changes)
    if first_snapshot:
        references = OrderMatch(snap.shopify_id, snap.name).references()
        woke = wake_parked(session, shop_id, references, cause.now)
        changes.append(OrderDetailsArrived(order.id, woke))


def _replace_line_items(session: Session, order: Order, snap: OrderSnapshot) -> None:
    """The order's lines as the newer snapshot has them (an edit may change
    them), when it has them at all."""
    if snap.line_items is None:
        return
    session.execute(
        delete(LineItem).where(LineItem.shop_id == order.shop_id, LineItem.order_id == order.id)
    )
    for position, item in enumerate(snap.line_items):
        session.add(
            LineItem(
                shop_id=order.shop_id,
                order_id=order.id,
                position=position,
                title=item.title,
                variant_title=item.variant_title,
                sku=item.sku,
                quantity=item.quantity,
                price=item.price,
            )
        )


def _lock_order(
    session: Session, shop_id: int, shopify_id: int, cause: Cause, first_seen: datetime
) -> Order:
    created = insert_ignoring_conflicts(
        session,
        Order.__table__,
        {
            "shop_id": shop_id,
            "shopify_id": shopify_id,
            "state": OrderState.PENDING,
            "state_changed_at": cause.now,
            "created_at": cause.now,
        },
    )
    order = session.exec(
        select(Order)
        .where(Order.shop_id == shop_id, Order.shopify_id == shopify_id)
        .with_for_update()
    ).one()
    if created:
        _timeline(session, order, "state", None, OrderState.PENDING, cause, first_seen)
    return order


class OrderNotKnown(LookupError):
    """A provider event names an order we have not seen (yet). The worker
    parks it under `references` until an order or shipment matching one of
    them arrives."""

    def __init__(self, references: tuple[str, ...]):
        super().__init__(f"no order matches {', '.join(references) or 'nothing'}")
        self.references = references


def _find_order(session: Session, shop_id: int, match: OrderMatch | None) -> Order:
    """The order a provider event is about, locked; by Shopify id, then by
    order number, then by a tracking number we already know."""
    match = match or OrderMatch()
    query = select(Order).where(Order.shop_id == shop_id).with_for_update()
    order = None
    if match.shopify_id is not None:
        order = session.exec(query.where(Order.shopify_id == match.shopify_id)).first()
    if order is None and match.name:
        number = order_number(match.name)
        order = session.exec(
            query.where(Order.name.in_([number, f"#{number}"])).order_by(Order.id)
        ).first()
    if order is None and match.tracking_number:
        order = session.exec(
            query.join(Shipment, Shipment.order_id == Order.id).where(
                Shipment.shop_id == shop_id, Shipment.tracking_number == match.tracking_number
            )
        ).first()
    if order is None:
        raise OrderNotKnown(match.references())
    return order


def _apply_shipment(
    session: Session, order: Order, snap: ShipmentSnapshot, cause: Cause, changes: list[Change]
) -> None:
    shipment = session.exec(
        select(Shipment)
        .where(
            Shipment.shop_id == order.shop_id,
            Shipment.source == snap.source,
            Shipment.external_id == snap.external_id,
        )
        .with_for_update()
    ).one_or_none()
    if shipment is None:
        shipment = Shipment(
            shop_id=order.shop_id,
            order_id=order.id,
            source=snap.source,
            external_id=snap.external_id,
            status=snap.status,
            source_updated_at=snap.updated_at,
            created_at=cause.now,
        )
        _copy_facts(shipment, snap)
        session.add(shipment)
        session.flush()
        _timeline(session, order, "shipment", None, snap.status, cause, snap.updated_at, shipment)
        changes.append(
            ShipmentStageChanged(order.id, shipment.id, None, snap.status, snap.updated_at)
        )
        if snap.tracking_number:
            wake_parked(session, order.shop_id, (f"tracking:{snap.tracking_number}",), cause.now)
        return
    if not is_newer(snap.updated_at, shipment.source_updated_at):
        return
    previous_status, previous_eta = shipment.status, shipment.estimated_delivery_at
    had_tracking = shipment.tracking_number
    shipment.status = snap.status
    shipment.source_updated_at = snap.updated_at
    _copy_facts(shipment, snap)
    if previous_status != snap.status:
        changes.append(
            ShipmentStageChanged(
                order.id, shipment.id, previous_status, snap.status, snap.updated_at
            )
        )
        _timeline(
            session, order, "shipment", previous_status, snap.status, cause, snap.updated_at,
            shipment,
        )  # fmt: skip
    else:
        changes.append(ShipmentFactsChanged(order.id, shipment.id))
    if previous_eta and shipment.estimated_delivery_at != previous_eta:
        _timeline(
            session, order, "eta", _day(previous_eta), _day(shipment.estimated_delivery_at),
            cause, snap.updated_at, shipment,
        )  # fmt: skip
    if shipment.tracking_number and shipment.tracking_number != had_tracking:
        wake_parked(session, order.shop_id, (f"tracking:{shipment.tracking_number}",), cause.now)


_FACTS = (
    "status_detail",
    "carrier",
    "tracking_number",
    "tracking_url",
    "promised_ship_at",
    "shipped_at",
    "estimated_delivery_at",
    "delivered_at",
    "last_scan_at",
)


def _copy_facts(shipment: Shipment, snap: ShipmentSnapshot) -> None:
    """Take the facts the event knows; keep the ones it does not (None)."""
    for name in _FACTS:
        value = getattr(snap, name)
        if value is not None:
            setattr(shipment, name, value)
    if snap.status_detail is None:
        shipment.status_detail = None  # a new status without a reason clears the old one
    if shipment.first_estimated_delivery_at is None:
        shipment.first_estimated_delivery_at = shipment.estimated_delivery_at


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "unknown"


def _recompute_state(
    session: Session, order: Order, cause: Cause, occurred_at: datetime, changes: list[Change]
) -> None:
    session.flush()
    reports = session.exec(
        select(
            Shipment.id, Shipment.tracking_number, Shipment.source_updated_at, Shipment.status
        ).where(Shipment.shop_id == order.shop_id, Shipment.order_id == order.id)
    ).all()
    parcels = parcel_statuses(
        [
            ParcelReport(tracking or f"id:{sid}", stamp, ShipmentStatus(status))
            for sid, tracking, stamp, status in reports
        ]
    )
    facts = OrderFacts(order.financial_status, order.fulfillment_status, order.cancelled_at)
    state = derive_state(facts, parcels)
    if state != order.state:
        _timeline(session, order, "state", order.state, state, cause, occurred_at)
        changes.append(OrderStateChanged(order.id, order.state, state, occurred_at))
        order.state = state
        order.state_changed_at = cause.now
    session.flush()


def _timeline(
    session: Session,
    order: Order,
    kind: str,
    from_status: str | None,
    to_status: str,
    cause: Cause,
    occurred_at: datetime,
    shipment: Shipment | None = None,
) -> None:
    session.add(
        OrderEvent(
            shop_id=order.shop_id,
            order_id=order.id,
            kind=kind,
            from_status=from_status,
            to_status=to_status,
            shipment_id=shipment.id if shipment else None,
            cause=cause.label,
            inbox_id=cause.inbox_id,
            occurred_at=occurred_at,
            recorded_at=cause.now,
        )
    )


# --- the promise: Shopify's fulfillment orders ------------------------------------

# The per-shop job (`app.jobs.SHOP_JOBS`) that reads recent orders with their
# fulfillment orders: queued when a webhook says a deadline moved without
# saying where to.
RECONCILE_JOB = "orders.reconcile"
# Fulfillment orders that promise nothing any more: done, or gone.
_FINISHED = frozenset({"closed", "cancelled", "incomplete"})


def _apply_fulfillment_order(
    session: Session, shop_id: int, snap: FulfillmentOrderSnapshot, cause: Cause,
    changes: list[Change],
) -> None:  # fmt: skip
    """Newer wins per fulfillment order; the order's promise and hold are
    then recomputed from all of its fulfillment orders. A webhook names no
    order: one about a fulfillment order we have not read yet is parked
    under `fulfillment_order:<id>` until reconciliation or the history
    import reads it (with its order) and wakes it."""
    if snap.refresh:
        # At most one extra reconciliation a minute, however many signals.
        enqueue_once(session, shop_id, RECONCILE_JOB,
                     f"signal:{cause.now:%Y-%m-%dT%H:%M}", cause.now)  # fmt: skip
    reference = f"fulfillment_order:{snap.fulfillment_order_id}"
    known = session.exec(
        select(FulfillmentOrder).where(
            FulfillmentOrder.shop_id == shop_id,
            FulfillmentOrder.shopify_id == snap.fulfillment_order_id,
        )
    ).one_or_none()
    if snap.order_shopify_id is not None:
        order = _lock_order(session, shop_id, snap.order_shopify_id, cause, snap.updated_at)
    elif known is not None:
        order = session.exec(
            select(Order).where(Order.id == known.order_id).with_for_update()
        ).one()
    else:
        raise OrderNotKnown((reference,))
    row = session.exec(
        select(FulfillmentOrder)
        .where(
            FulfillmentOrder.shop_id == shop_id,
            FulfillmentOrder.shopify_id == snap.fulfillment_order_id,
        )
        .with_for_update()
    ).one_or_none()
    if row is None:
        row = FulfillmentOrder(
            shop_id=shop_id, shopify_id=snap.fulfillment_order_id, order_id=order.id,
            status=snap.status or "open", source_updated_at=snap.updated_at, created_at=cause.now,
        )  # fmt: skip
    elif not is_newer(snap.updated_at, row.source_updated_at):
        return
    row.order_id = order.id
    row.status = snap.status or row.status
    row.hold_reason = snap.hold_reason if row.status == "on_hold" else None
    row.source_updated_at = snap.updated_at
    for name in ("fulfill_by", "fulfill_at", "delivery_min_at", "delivery_max_at"):
        value = getattr(snap, name)
        if snap.complete or value is not None:
            setattr(row, name, value)
    session.add(row)
    session.flush()
    if known is None:
        wake_parked(session, shop_id, (reference,), cause.now)
    _recompute_promise(session, order, cause, snap.updated_at, changes)


def _recompute_promise(
    session: Session, order: Order, cause: Cause, occurred_at: datetime, changes: list[Change]
) -> None:
    """The order's promise from its open fulfillment orders: the earliest
    ship-by, the widest delivery window; on hold if any of them is."""
    rows = session.exec(
        select(FulfillmentOrder).where(
            FulfillmentOrder.shop_id == order.shop_id, FulfillmentOrder.order_id == order.id
        )
    ).all()
    live = [row for row in rows if row.status not in _FINISHED]
    fulfill_by = min((r.fulfill_by for r in live if r.fulfill_by), default=None)
    window_min = min((r.delivery_min_at for r in live if r.delivery_min_at), default=None)
    window_max = max((r.delivery_max_at for r in live if r.delivery_max_at), default=None)
    promise = (fulfill_by, window_min, window_max)
    if promise != (order.fulfill_by, order.delivery_min_at, order.delivery_max_at):
        order.fulfill_by, order.delivery_min_at, order.delivery_max_at = promise
        changes.append(PromiseChanged(order.id, *promise, occurred_at))
    held = sorted((r for r in live if r.status == "on_hold"), key=lambda r: r.shopify_id)
    reason = held[0].hold_reason if held else None
    if bool(held) != order.on_hold or reason != order.hold_reason:
        was = "on_hold" if order.on_hold else "released"
        order.on_hold, order.hold_reason, order.hold_changed_at = bool(held), reason, occurred_at
        changes.append(HoldChanged(order.id, bool(held), reason, occurred_at))
        now_status = "on_hold" if held else "released"
        if now_status != was:
            _timeline(session, order, "hold", was, now_status, cause, occurred_at)
    session.add(order)
    session.flush()
