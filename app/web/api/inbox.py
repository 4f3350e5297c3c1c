"""The shop's webhook inbox: what is pending, parked or dead, and retrying."""

from __future__ import annotations

from sqlmodel import Session, select

from app import inbox
from app.models import InboxMessage
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.schemas import InboxEntry, InboxList, InboxQuery, Requeued


@api.route("GET", "/inbox", query=InboxQuery, response=InboxList)
def get_inbox(query: InboxQuery):
    """Webhook deliveries by status, newest first (dead letters by default)."""
    with Session(runtime().engine) as session:
        messages = session.exec(
            select(InboxMessage)
            .where(InboxMessage.shop_id == shop_id(), InboxMessage.status == query.status)
            .order_by(InboxMessage.id.desc())
            .limit(query.limit)
        ).all()
    return InboxList(
        messages=[InboxEntry.model_validate(m, from_attributes=True) for m in messages]
    )


@api.route("POST", "/inbox/<row_id:message_id>/retry", response=Requeued, errors=(404,))
def retry_message(message_id: int):
    """Put a dead-lettered delivery back in the queue."""
    rt = runtime()
    if not inbox.retry_dead(rt.engine, shop_id(), [message_id], rt.clock.now()):
        return error_response(404, "not_found", f"no dead-lettered message {message_id}")
    rt.inbox_wakeup.set()
    return Requeued(status="queued", id=message_id)
