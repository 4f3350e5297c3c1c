"""Read model of orders: what the API, the pages and the demo show."""

from __future__ import annotations

from sqlmodel import Session, select

from app.models import (
    Customer,
    DelayEpisode,
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
            "id": n.id, "kind": n.kind, "rule": rule, "channel": n.channel, "status": n.status,
            "status_detail": n.status_detail, "created_at": n.created_at, "sent_at": n.sent_at,
            "history": steps.get(n.id, []),
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
