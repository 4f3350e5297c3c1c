"""Read model of orders: what the API, the pages and the demo show."""

from __future__ import annotations

from sqlalchemy import func, or_
from sqlmodel import Session, select

from app.models import (
    Customer,
    DelayEpisode,
    LineItem,
    Notification,
    NotificationEvent,
    Order,
    OrderEvent,
    Rule,
    Shipment,
)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def order_summary(order: Order) -> dict:
    return {
        "id": order.shopify_id,
        "name": order.name,
        "state": order.state,
        "state_changed_at": _iso(order.state_changed_at),
        "financial_status": order.financial_status,
        "fulfillment_status": order.fulfillment_status,
        "currency": order.currency,
        "total_price": str(order.total_price) if order.total_price is not None else None,
        "created_at": _iso(order.shopify_created_at),
        "cancelled_at": _iso(order.cancelled_at),
    }


def order_document(session: Session, shop_id: int, shopify_id: int) -> dict | None:
    """The order with its customer, shipments and timeline; None if this shop
    has no such order."""
    order = session.exec(
        select(Order).where(Order.shop_id == shop_id, Order.shopify_id == shopify_id)
    ).first()
    if order is None:
        return None
    customer = (
        session.exec(
            select(Customer).where(Customer.shop_id == shop_id, Customer.id == order.customer_id)
        ).first()
        if order.customer_id
        else None
    )
    shipments = session.exec(
        select(Shipment)
        .where(Shipment.shop_id == shop_id, Shipment.order_id == order.id)
        .order_by(Shipment.id)
    ).all()
    events = session.exec(
        select(OrderEvent)
        .where(OrderEvent.shop_id == shop_id, OrderEvent.order_id == order.id)
        .order_by(OrderEvent.id)
    ).all()
    shipment_names = {s.id: f"{s.source}:{s.external_id}" for s in shipments}
    return {
        **order_summary(order),
        "email": order.email,
        "phone": order.phone,
        "customer": customer_document(customer) if customer else None,
        "shipments": [
            {
                "id": s.external_id,
                "source": s.source,
                "status": s.status,
                "status_detail": s.status_detail,
                "carrier": s.carrier,
                "tracking_number": s.tracking_number,
                "tracking_url": s.tracking_url,
                "promised_ship_at": _iso(s.promised_ship_at),
                "shipped_at": _iso(s.shipped_at),
                "estimated_delivery_at": _iso(s.estimated_delivery_at),
                "delivered_at": _iso(s.delivered_at),
                "last_scan_at": _iso(s.last_scan_at),
                "updated_at": _iso(s.source_updated_at),
            }
            for s in shipments
        ],
        "timeline": [
            {
                "kind": e.kind,
                "from": e.from_status,
                "to": e.to_status,
                "shipment": shipment_names.get(e.shipment_id) if e.shipment_id else None,
                "cause": e.cause,
                "occurred_at": _iso(e.occurred_at),
                "recorded_at": _iso(e.recorded_at),
            }
            for e in events
        ],
        "messages": _messages(session, shop_id, order.id),
        "delays": [
            {
                "cause": d.cause,
                "shipment": shipment_names.get(d.shipment_id) if d.shipment_id else None,
                **{
                    name: getattr(d, name)
                    for name in (
                        "detected_at",
                        "promised_at",
                        "expected_at",
                        "told_at",
                        "told_channel",
                        "escalated_at",
                        "resolved_at",
                        "resolution",
                    )
                },
            }
            for d in session.exec(
                select(DelayEpisode)
                .where(DelayEpisode.shop_id == shop_id, DelayEpisode.order_id == order.id)
                .order_by(DelayEpisode.id)
            ).all()
        ],
    }


def _messages(session: Session, shop_id: int, order_id: int) -> list[dict]:
    """The order's messages with the rule that queued each and every step."""
    rows = session.exec(
        select(Notification, Rule.name)
        .join(Rule, (Rule.id == Notification.rule_id) & (Rule.shop_id == shop_id), isouter=True)
        .where(Notification.shop_id == shop_id, Notification.order_id == order_id)
        .order_by(Notification.id)
    ).all()
    steps: dict[int, list[dict]] = {}
    for event in session.exec(
        select(NotificationEvent)
        .where(
            NotificationEvent.shop_id == shop_id,
            NotificationEvent.notification_id.in_([n.id for n, _ in rows]),
        )
        .order_by(NotificationEvent.id)
    ).all():
        steps.setdefault(event.notification_id, []).append(
            {"status": event.status, "detail": event.detail, "at": event.at}
        )
    return [
        {
            "id": n.id, "kind": n.kind, "rule": rule, "channel": n.channel,
            "recipient": n.recipient, "status": n.status, "status_detail": n.status_detail,
            "reason": n.status_detail, "created_at": n.created_at, "sent_at": n.sent_at,
            "updated_at": n.updated_at, "history": steps.get(n.id, []),
        }
        for n, rule in rows
    ]  # fmt: skip


def customer_document(customer: Customer) -> dict:
    return {
        "id": customer.shopify_id,
        "email": customer.email,
        "phone": customer.phone,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "locale": customer.locale,
        "email_marketing_consent": customer.email_consent,
        "sms_marketing_consent": customer.sms_consent,
        "redacted": customer.redacted_at is not None,
    }


def list_orders(
    session: Session, shop_id: int, *, state: str | None, after: int | None, limit: int
) -> list[Order]:
    """The shop's orders, newest first (the order we heard of last on top),
    `limit` at a time. The cursor is the last id of the previous page: ids
    never change, so a merchant paging through sees every order once even
    while orders arrive or change state (new ones land before page one)."""
    query = select(Order).where(Order.shop_id == shop_id)
    if state:
        query = query.where(Order.state == state)
    if after:
        query = query.where(Order.id < after)
    return list(session.exec(query.order_by(Order.id.desc()).limit(limit)).all())


# --- the merchant's pages ------------------------------------------------------

SEARCH_MAX = 100


def search_orders(
    session: Session,
    shop_id: int,
    *,
    text: str,
    state: str | None,
    after: int | None,
    limit: int,
) -> list[tuple[Order, Customer | None]]:
    """The shop's orders (newest first, paged like `list_orders`) whose
    number, customer name, email or phone contains `text`, with their
    customer. "#1001", "1001", "ana", "ana@example.com", "+34 600" all find."""
    query = (
        select(Order, Customer)
        .join(Customer, Customer.id == Order.customer_id, isouter=True)
        .where(Order.shop_id == shop_id)
    )
    words = text.strip()[:SEARCH_MAX]
    if words:
        pattern = f"%{_escape_like(words.lower())}%"
        digits = "".join(c for c in words if c.isdigit())
        matches = [
            func.lower(Order.name).like(pattern, escape="\\"),
            func.lower(Order.email).like(pattern, escape="\\"),
            func.lower(Customer.email).like(pattern, escape="\\"),
            func.lower(Customer.first_name).like(pattern, escape="\\"),
            func.lower(Customer.last_name).like(pattern, escape="\\"),
            func.lower(
                func.coalesce(Customer.first_name, "") + " " + func.coalesce(Customer.last_name, "")
            ).like(pattern, escape="\\"),
        ]
        if len(digits) >= 3:  # phone numbers are kept as E.164: match the digits
            matches += [Order.phone.like(f"%{digits}%"), Customer.phone.like(f"%{digits}%")]
        query = query.where(or_(*matches))
    if state:
        query = query.where(Order.state == state)
    if after:
        query = query.where(Order.id < after)
    return list(session.exec(query.order_by(Order.id.desc()).limit(limit)).all())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def order_page(session: Session, shop_id: int, shopify_id: int) -> dict | None:
    """`order_document` plus what the order page adds: the line items."""
    document = order_document(session, shop_id, shopify_id)
    if document is None:
        return None
    order_id = session.exec(
        select(Order.id).where(Order.shop_id == shop_id, Order.shopify_id == shopify_id)
    ).one()
    items = session.exec(
        select(LineItem)
        .where(LineItem.shop_id == shop_id, LineItem.order_id == order_id)
        .order_by(LineItem.position)
    ).all()
    return document | {
        "line_items": [
            {
                "title": i.title,
                "variant_title": i.variant_title,
                "sku": i.sku,
                "quantity": i.quantity,
                "price": str(i.price) if i.price is not None else None,
            }
            for i in items
        ],
    }


# Sources by the names merchants know them by.
SOURCE_NAMES = {
    "shopify": "Shopify",
    "shipbob": "ShipBob",
    "aftership": "AfterShip",
    "standard_webhooks": "Standard Webhooks",
}


def source_name(source: str | None) -> str:
    if not source:
        return ""
    return SOURCE_NAMES.get(source, source.replace("_", " ").title())


def readable_cause(cause: str) -> tuple[str, str, str]:
    """A timeline cause ("shipbob:order.shipment.on_hold") as (who, topic,
    what in words): ("ShipBob", "order.shipment.on_hold", "order shipment on
    hold"). The page says known topics in its own words (`cause_word`) and
    falls back to these."""
    source, _, topic = cause.partition(":")
    words = topic.replace("/", " ").replace(".", " ").replace("_", " ").strip()
    return source_name(source), topic, words
