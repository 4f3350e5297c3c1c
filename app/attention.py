"""What a merchant's home page shows: what needs attention now, and the
messages sent today. Plain queries over one shop's rows (every one scoped by
`shop_id`), for the page to show as it is.

- orders at risk: not yet delivered, cancelled or refunded, with a parcel in
  trouble (an exception, a failed attempt, on hold, returned) or the order in
  `delivery_exception`;
- dead letters: webhooks the inbox gave up on, and notifications that died
  after their retries;
- failing providers: a webhook source with dead letters in the last 7 days, or
  a channel provider (email, SMS) whose sends failed in the last 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_
from sqlmodel import Session, select

from app.events import ShipmentStatus
from app.models import InboxMessage, Notification, Order, Shipment
from app.order_state import OrderState

TROUBLE = (
    ShipmentStatus.EXCEPTION,
    ShipmentStatus.ATTEMPTED,
    ShipmentStatus.ON_HOLD,
    ShipmentStatus.RETURNED,
)
SETTLED = (OrderState.DELIVERED, OrderState.CANCELLED, OrderState.REFUNDED)
AT_RISK_SHOWN = 10


@dataclass(frozen=True)
class OrderAtRisk:
    shopify_id: int
    name: str | None
    state: str
    shipment_status: str | None
    shipment_source: str | None
    detail: str | None


@dataclass(frozen=True)
class FailingProvider:
    name: str  # "shipbob", "smtp", ...
    what: str  # "webhooks" or "sends"
    count: int


@dataclass(frozen=True)
class Attention:
    at_risk: list[OrderAtRisk]
    at_risk_total: int
    dead_webhooks: int
    dead_notifications: int
    failing_providers: list[FailingProvider]


def attention(session: Session, shop_id: int, now: datetime) -> Attention:
    in_trouble = (
        select(Shipment.order_id)
        .where(Shipment.shop_id == shop_id, Shipment.status.in_([s.value for s in TROUBLE]))
        .scalar_subquery()
    )
    at_risk_where = (
        Order.shop_id == shop_id,
        Order.state.not_in([s.value for s in SETTLED]),
        or_(Order.state == OrderState.DELIVERY_EXCEPTION.value, Order.id.in_(in_trouble)),
    )
    total = session.exec(select(func.count()).select_from(Order).where(*at_risk_where)).one()
    orders = session.exec(
        select(Order).where(*at_risk_where).order_by(Order.id.desc()).limit(AT_RISK_SHOWN)
    ).all()
    shipments = {
        s.order_id: s
        for s in session.exec(
            select(Shipment)
            .where(
                Shipment.shop_id == shop_id,
                Shipment.order_id.in_([o.id for o in orders]),
                Shipment.status.in_([s.value for s in TROUBLE]),
            )
            .order_by(Shipment.id)
        ).all()
    }
    at_risk = []
    for o in orders:
        parcel = shipments.get(o.id)
        at_risk.append(
            OrderAtRisk(
                o.shopify_id,
                o.name,
                o.state,
                parcel.status if parcel else None,
                parcel.source if parcel else None,
                parcel.status_detail if parcel else None,
            )
        )
    dead_webhooks = session.exec(
        select(func.count())
        .select_from(InboxMessage)
        .where(InboxMessage.shop_id == shop_id, InboxMessage.status == "dead")
    ).one()
    dead_notifications = session.exec(
        select(func.count())
        .select_from(Notification)
        .where(Notification.shop_id == shop_id, Notification.status == "dead")
    ).one()
    failing = [
        FailingProvider(source, "webhooks", count)
        for source, count in session.exec(
            select(InboxMessage.source, func.count())
            .where(
                InboxMessage.shop_id == shop_id,
                InboxMessage.status == "dead",
                InboxMessage.received_at >= now - timedelta(days=7),
            )
            .group_by(InboxMessage.source)
            .order_by(InboxMessage.source)
        ).all()
    ] + [
        FailingProvider(provider or channel, "sends", count)
        for provider, channel, count in session.exec(
            select(Notification.provider, Notification.channel, func.count())
            .where(
                Notification.shop_id == shop_id,
                Notification.status.in_(["failed", "dead", "bounced"]),
                Notification.updated_at >= now - timedelta(hours=24),
            )
            .group_by(Notification.provider, Notification.channel)
            .order_by(Notification.channel)
        ).all()
    ]
    return Attention(at_risk, total, dead_webhooks, dead_notifications, failing)


def messages_today(
    session: Session, shop_id: int, timezone: str, now: datetime
) -> dict[str, dict[str, int]]:
    """Notifications created since midnight in the shop's time zone: count by
    kind, then by status (queued, sent, delivered, suppressed, failed, ...)."""
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = session.exec(
        select(Notification.kind, Notification.status, func.count())
        .where(Notification.shop_id == shop_id, Notification.created_at >= midnight)
        .group_by(Notification.kind, Notification.status)
        .order_by(Notification.kind, Notification.status)
    ).all()
    today: dict[str, dict[str, int]] = {}
    for kind, status, count in rows:
        today.setdefault(kind, {})[status] = count
    return today
