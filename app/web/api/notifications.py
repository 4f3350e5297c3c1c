"""What was sent to whom, when, how, and with what result."""

from __future__ import annotations

from sqlmodel import Session, select

from app.models import Notification, NotificationEvent, Order
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.schemas import NotificationList, NotificationRecord, NotificationsQuery


@api.route("GET", "/notifications", query=NotificationsQuery, response=NotificationList)
def get_notifications(query: NotificationsQuery):
    """The shop's notifications, newest first, each with its history."""
    with Session(runtime().engine) as session:
        statement = select(Notification).where(Notification.shop_id == shop_id())
        if query.order_id is not None:
            order = session.exec(
                select(Order.id).where(
                    Order.shop_id == shop_id(), Order.shopify_id == query.order_id
                )
            ).first()
            statement = statement.where(Notification.order_id == (order or -1))
        notifications = session.exec(
            statement.order_by(Notification.id.desc()).limit(query.limit)
        ).all()
        events = session.exec(
            select(NotificationEvent)
            .where(
                NotificationEvent.shop_id == shop_id(),
                NotificationEvent.notification_id.in_([n.id for n in notifications]),
            )
            .order_by(NotificationEvent.id)
        ).all()
    history: dict[int, list] = {}
    for event in events:
        history.setdefault(event.notification_id, []).append(
            {"status": event.status, "detail": event.detail, "at": event.at}
        )
    return NotificationList(
        notifications=[
            NotificationRecord.model_validate(n.model_dump() | {"history": history.get(n.id, [])})
            for n in notifications
        ]
    )
