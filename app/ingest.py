"""Apply domain events to the database.

The caller owns the transaction: these functions flush but never commit, so
that a state change and whatever it causes (timeline rows now, outbox rows
later) commit together or not at all.

Rows an event touches are locked (`SELECT ... FOR UPDATE` on PostgreSQL;
SQLite has a single writer) after an insert-if-missing, so that two workers
handling two events of one order serialise instead of losing an update.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, update
from sqlmodel import Session, select

from app.db import insert_ignoring_conflicts
from app.events import (
    ConsentChange,
    CustomerDataRequest,
    CustomerRedaction,
    CustomerSnapshot,
    Event,
    OrderSnapshot,
    ShipmentSnapshot,
    ShopRedaction,
    ShopUninstalled,
)
from app.models import (
    Customer,
    DataRequest,
    InboxMessage,
    Order,
    OrderEvent,
    Shipment,
    Shop,
)
from app.order_state import OrderFacts, OrderState, ShipmentStatus, derive_state, is_newer

_PII_CUSTOMER_FIELDS = ("email", "phone", "first_name", "last_name")
REDACTED_BODY = "{}"


@dataclass(frozen=True)
class Cause:
    """Why a change happened, for the timeline."""

    label: str  # e.g. "shopify:orders/paid"
    inbox_id: int | None
    now: datetime


def apply(session: Session, shop_id: int, event: Event, cause: Cause) -> None:
    match event:
        case OrderSnapshot():
            _apply_order(session, shop_id, event, cause)
        case ShipmentSnapshot():
            order = _lock_order(session, shop_id, event.order_shopify_id, cause, event.updated_at)
            _apply_shipment(session, order, event, cause)
            _recompute_state(session, order, cause, event.updated_at)
        case CustomerSnapshot():
            _apply_customer(session, shop_id, event, cause)
        case ConsentChange():
            _apply_consent(session, shop_id, event, cause)
        case ShopUninstalled():
            session.exec(update(Shop).where(Shop.id == shop_id).values(uninstalled_at=cause.now))
        case CustomerRedaction():
            redact_customer(
                session, shop_id, event.customer_shopify_id, event.order_shopify_ids, cause.now
            )
        case CustomerDataRequest():
            _record_data_request(session, shop_id, event, cause)
        case ShopRedaction():
            erase_shop(session, shop_id)
        case _:
            raise TypeError(f"no handler for {type(event).__name__}")


def _apply_order(session: Session, shop_id: int, snap: OrderSnapshot, cause: Cause) -> None:
    customer = _apply_customer(session, shop_id, snap.customer, cause) if snap.customer else None
    order = _lock_order(
        session, shop_id, snap.shopify_id, cause, snap.created_at or snap.updated_at
    )
    if is_newer(snap.updated_at, order.snapshot_updated_at):
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
        if customer is not None:
            order.customer_id = customer.id
    for shipment in snap.shipments:
        _apply_shipment(session, order, shipment, cause)
    _recompute_state(session, order, cause, snap.updated_at)


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


def _apply_shipment(session: Session, order: Order, snap: ShipmentSnapshot, cause: Cause) -> None:
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
            carrier=snap.carrier,
            tracking_number=snap.tracking_number,
            tracking_url=snap.tracking_url,
            source_updated_at=snap.updated_at,
            created_at=cause.now,
        )
        session.add(shipment)
        session.flush()
        _timeline(session, order, "shipment", None, snap.status, cause, snap.updated_at, shipment)
        return
    if not is_newer(snap.updated_at, shipment.source_updated_at):
        return
    previous = shipment.status
    shipment.status = snap.status
    shipment.carrier = snap.carrier
    shipment.tracking_number = snap.tracking_number
    shipment.tracking_url = snap.tracking_url
    shipment.source_updated_at = snap.updated_at
    if previous != snap.status:
        _timeline(
            session, order, "shipment", previous, snap.status, cause, snap.updated_at, shipment
        )


def _recompute_state(session: Session, order: Order, cause: Cause, occurred_at: datetime) -> None:
    session.flush()
    statuses = session.exec(
        select(Shipment.status).where(
            Shipment.shop_id == order.shop_id, Shipment.order_id == order.id
        )
    )
    facts = OrderFacts(order.financial_status, order.fulfillment_status, order.cancelled_at)
    state = derive_state(facts, [ShipmentStatus(s) for s in statuses])
    if state != order.state:
        _timeline(session, order, "state", order.state, state, cause, occurred_at)
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


def _lock_customer(session: Session, shop_id: int, shopify_id: int) -> Customer:
    insert_ignoring_conflicts(
        session, Customer.__table__, {"shop_id": shop_id, "shopify_id": shopify_id}
    )
    return session.exec(
        select(Customer)
        .where(Customer.shop_id == shop_id, Customer.shopify_id == shopify_id)
        .with_for_update()
    ).one()


def _apply_customer(
    session: Session, shop_id: int, snap: CustomerSnapshot, cause: Cause
) -> Customer:
    customer = _lock_customer(session, shop_id, snap.shopify_id)
    if is_newer(snap.updated_at, customer.snapshot_updated_at):
        for name, value in snap.attributes.items():
            if customer.redacted_at is not None and name in _PII_CUSTOMER_FIELDS:
                continue
            setattr(customer, name, value)
        customer.snapshot_updated_at = snap.updated_at
    session.flush()
    return customer


def _apply_consent(session: Session, shop_id: int, change: ConsentChange, cause: Cause) -> None:
    customer = _lock_customer(session, shop_id, change.customer_shopify_id)
    stamp_field = f"{change.channel}_consent_updated_at"
    if not is_newer(change.updated_at, getattr(customer, stamp_field)):
        return
    setattr(customer, f"{change.channel}_consent", change.state)
    setattr(customer, stamp_field, change.updated_at)
    address_field = "email" if change.channel == "email" else "phone"
    if change.address and customer.redacted_at is None and not getattr(customer, address_field):
        setattr(customer, address_field, change.address)
    session.flush()


def redact_customer(
    session: Session,
    shop_id: int,
    customer_shopify_id: int | None,
    order_shopify_ids: tuple[int, ...],
    now: datetime,
) -> None:
    """Erase a customer's personal data everywhere we hold it: the customer
    row, their orders, and the raw webhook bodies that mention either.

    The rows themselves stay (with ids and states) so that counts and cohorts
    still add up; `redacted_at` keeps later, older deliveries from bringing the
    data back.
    """
    customer_ids: list[int] = []
    if customer_shopify_id is not None:
        customer = _lock_customer(session, shop_id, customer_shopify_id)
        for name in _PII_CUSTOMER_FIELDS:
            setattr(customer, name, None)
        customer.redacted_at = now
        customer_ids.append(customer.id)
    order_filter = Order.shopify_id.in_(order_shopify_ids)
    if customer_ids:
        order_filter = or_(order_filter, Order.customer_id.in_(customer_ids))
    session.exec(
        update(Order)
        .where(Order.shop_id == shop_id, order_filter)
        .values(email=None, phone=None, redacted_at=now)
    )
    redacted_orders = session.exec(
        select(Order.shopify_id).where(Order.shop_id == shop_id, order_filter)
    ).all()
    inbox_filter = InboxMessage.order_ref.in_(set(redacted_orders) | set(order_shopify_ids))
    if customer_shopify_id is not None:
        inbox_filter = or_(inbox_filter, InboxMessage.customer_ref == customer_shopify_id)
    session.exec(
        update(InboxMessage)
        .where(InboxMessage.shop_id == shop_id, inbox_filter)
        .values(body=REDACTED_BODY)
    )
    if customer_shopify_id is not None:
        # An export made for an earlier data request is a copy of the same data.
        session.exec(
            delete(DataRequest).where(
                DataRequest.shop_id == shop_id,
                DataRequest.customer_shopify_id == customer_shopify_id,
            )
        )
    session.flush()


def _record_data_request(
    session: Session, shop_id: int, request: CustomerDataRequest, cause: Cause
) -> None:
    customer = None
    if request.customer_shopify_id is not None:
        customer = session.exec(
            select(Customer).where(
                Customer.shop_id == shop_id, Customer.shopify_id == request.customer_shopify_id
            )
        ).one_or_none()
    order_filter = Order.shopify_id.in_(request.order_shopify_ids)
    if customer is not None:
        order_filter = or_(order_filter, Order.customer_id == customer.id)
    orders = session.exec(
        select(Order).where(Order.shop_id == shop_id, order_filter).order_by(Order.id)
    ).all()
    shipments = session.exec(
        select(Shipment).where(
            Shipment.shop_id == shop_id, Shipment.order_id.in_([o.id for o in orders])
        )
    ).all()
    export = {
        "customer": customer.model_dump(mode="json", exclude={"id", "shop_id"})
        if customer
        else None,
        "orders": [o.model_dump(mode="json", exclude={"id", "shop_id"}) for o in orders],
        "shipments": [s.model_dump(mode="json", exclude={"id", "shop_id"}) for s in shipments],
    }
    session.add(
        DataRequest(
            shop_id=shop_id,
            shopify_request_id=request.request_id,
            customer_shopify_id=request.customer_shopify_id,
            requested_at=cause.now,
            export=json.dumps(export, sort_keys=True),
        )
    )
    session.flush()


def erase_shop(session: Session, shop_id: int) -> None:
    """Delete everything we hold for a shop (shop/redact), the shop included."""
    for model in (OrderEvent, Shipment, Order, Customer, DataRequest, InboxMessage):
        session.exec(delete(model).where(model.shop_id == shop_id))
    session.exec(delete(Shop).where(Shop.id == shop_id))
    session.flush()


def concerns_redacted(
    session: Session, shop_id: int, customer_shopify_id: int | None, order_shopify_id: int | None
) -> bool:
    """Whether a message is about a customer or order whose data was erased."""
    if (
        customer_shopify_id is not None
        and session.exec(
            select(Customer.id).where(
                Customer.shop_id == shop_id,
                Customer.shopify_id == customer_shopify_id,
                Customer.redacted_at.is_not(None),
            )
        ).first()
    ):
        return True
    return (
        order_shopify_id is not None
        and session.exec(
            select(Order.id).where(
                Order.shop_id == shop_id,
                Order.shopify_id == order_shopify_id,
                Order.redacted_at.is_not(None),
            )
        ).first()
        is not None
    )
