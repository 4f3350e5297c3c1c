"""Waking parked events: a provider event that named an order we did not
know yet waits in the inbox (`app.inbox`, status `parked`) under the
references it could match; the order or parcel that arrives wakes it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, select

from app.models import InboxMessage, ParkedReference


def wake_parked(session: Session, shop_id: int, references: tuple[str, ...], now: datetime) -> int:
    """Requeue the parked messages waiting for any of `references`."""
    if not references:
        return 0
    waiting = select(ParkedReference.inbox_id).where(
        ParkedReference.shop_id == shop_id, ParkedReference.reference.in_(references)
    )
    woken = session.exec(
        update(InboxMessage)
        .where(InboxMessage.id.in_(waiting), InboxMessage.status == "parked")
        .values(status="pending", next_attempt_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.exec(
        delete(ParkedReference)
        .where(ParkedReference.shop_id == shop_id, ParkedReference.inbox_id.in_(waiting))
        .execution_options(synchronize_session=False)
    )
    return woken
