"""Privacy: erasing a customer's personal data (customers/redact) or a
whole shop's (shop/redact), recording a customer's data request, and
telling whether a late message concerns someone already erased. What each
table holds and how it is erased is declared on its model (`__privacy__`).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, SQLModel, select

from app.customers import PII_CUSTOMER_FIELDS, lock_customer
from app.events import CustomerDataRequest
from app.models import (
    ChannelOptOut,
    Customer,
    DataRequest,
    InboxMessage,
    Notification,
    Order,
    RetentionAtRisk,
    Shipment,
    Shop,
    Survey,
    Ticket,
    TicketMessage,
)
from app.providers import PROVIDERS

REDACTED_BODY = "{}"


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
    addresses: list[str] = []
    if customer_shopify_id is not None:
        customer = lock_customer(session, shop_id, customer_shopify_id)
        addresses = [a for a in (customer.email, customer.phone) if a]
        for name in PII_CUSTOMER_FIELDS:
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
    # Messages to them: the address and the words rendered for them.
    notification_filter = Notification.order_id.in_(
        select(Order.id).where(Order.shop_id == shop_id, order_filter)
    )
    if customer_ids:
        notification_filter = or_(notification_filter, Notification.customer_id.in_(customer_ids))
    session.exec(
        update(Notification)
        .where(Notification.shop_id == shop_id, notification_filter)
        .values(recipient="", context="{}")
        .execution_options(synchronize_session=False)
    )
    # Their support tickets (what they wrote about) and survey comments.
    ticket_filter = Ticket.order_id.in_(
        select(Order.id).where(Order.shop_id == shop_id, order_filter)
    )
    if customer_ids:
        ticket_filter = or_(ticket_filter, Ticket.customer_id.in_(customer_ids))
        session.exec(
            update(Survey)
            .where(Survey.shop_id == shop_id, Survey.customer_id.in_(customer_ids))
            .values(comment=None)
        )
    requesters = session.exec(
        select(Ticket.requester_email, Ticket.requester_phone).where(
            Ticket.shop_id == shop_id, ticket_filter
        )
    ).all()
    _erase_helpdesk_bodies(
        session, shop_id, {a for row in requesters for a in row if a} | set(addresses)
    )
    session.exec(
        update(Ticket)
        .where(Ticket.shop_id == shop_id, ticket_filter)
        .values(requester_email=None, requester_phone=None, subject=None)
        .execution_options(synchronize_session=False)
    )
    session.exec(
        update(TicketMessage)
        .where(
            TicketMessage.shop_id == shop_id,
            TicketMessage.ticket_id.in_(
                select(Ticket.id).where(Ticket.shop_id == shop_id, ticket_filter)
            ),
        )
        .values(body=None)
        .execution_options(synchronize_session=False)
    )
    if customer_ids:
        # Retention snapshots hold aggregates; only their at-risk lists name anyone.
        session.exec(
            delete(RetentionAtRisk).where(
                RetentionAtRisk.shop_id == shop_id, RetentionAtRisk.customer_id.in_(customer_ids)
            )
        )
    if addresses:
        session.exec(
            delete(ChannelOptOut).where(
                ChannelOptOut.shop_id == shop_id, ChannelOptOut.address.in_(addresses)
            )
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


def _erase_helpdesk_bodies(session: Session, shop_id: int, addresses: set[str]) -> None:
    """Helpdesk deliveries name no Shopify customer (their inbox rows carry
    no customer_ref): the raw bodies that mention the customer's email or
    phone, or a ticket's requester address, are the ones about them."""
    if not addresses:
        return
    sources = [name for name, provider in PROVIDERS.items() if provider.KIND == "helpdesk"]
    mentions = or_(*(func.lower(InboxMessage.body).contains(a.lower()) for a in addresses))
    session.exec(
        update(InboxMessage)
        .where(InboxMessage.shop_id == shop_id, InboxMessage.source.in_(sources), mentions)
        .values(body=REDACTED_BODY)
        .execution_options(synchronize_session=False)
    )


def record_data_request(
    session: Session, shop_id: int, request: CustomerDataRequest, now: datetime
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
            requested_at=now,
            export=json.dumps(export, sort_keys=True),
        )
    )
    session.flush()


def erase_shop(session: Session, shop_id: int) -> None:
    """Delete everything we hold for a shop (shop/redact), the shop included:
    the rows of every table that carries `shop_id` (as each model's
    `__privacy__` declares), found from the models rather than listed, so
    that a table added later is erased too; dependents first."""
    for table in reversed(SQLModel.metadata.sorted_tables):
        if "shop_id" in table.c:
            session.exec(delete(table).where(table.c.shop_id == shop_id))
    session.exec(delete(Shop).where(Shop.id == shop_id))
    session.flush()


def concerns_redacted(
    session: Session, shop_id: int, customer_shopify_id: int | None, order_shopify_id: int | None
) -> bool:
    """Whether a message is about a customer or order whose data was erased."""
    return any(
        shopify_id is not None
        and session.exec(
            select(model.id).where(
                model.shop_id == shop_id,
                model.shopify_id == shopify_id,
                model.redacted_at.is_not(None),
            )
        ).first()
        is not None
        for model, shopify_id in ((Customer, customer_shopify_id), (Order, order_shopify_id))
    )
