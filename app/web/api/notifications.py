"""What was sent to whom, when, how, and with what result."""

from __future__ import annotations

from sqlmodel import Session, select

from app import notification_log
from app.models import NotificationEvent
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.schemas import NotificationList, NotificationRecord, NotificationsQuery


@api.route("GET", "/notifications", query=NotificationsQuery, response=NotificationList)
def get_notifications(query: NotificationsQuery):
    """The shop's notifications, newest first, each with its history; by
    kind, status, channel or order, a page at a time (`cursor`)."""
    filters = notification_log.Filters(query.kind, query.status, query.channel, query.order_id)
    with Session(runtime().engine) as session:
        entries, next_cursor = notification_log.page(
            session, shop_id(), filters, query.cursor, query.limit
        )
        events = session.exec(
            select(NotificationEvent)
            .where(
                NotificationEvent.shop_id == shop_id(),
                NotificationEvent.notification_id.in_([e.notification.id for e in entries]),
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
            NotificationRecord.model_validate(
                e.notification.model_dump()
                | {"rule": e.rule_name, "history": history.get(e.notification.id, [])}
            )
            for e in entries
        ],
        next_cursor=next_cursor,
    )
