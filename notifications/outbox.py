"""The outbox: notifications as rows, written in the caller's transaction,
claimed by workers, and moved through an explicit life:

    queued ─> sending ─> sent ─> delivered | bounced | failed
      │          │  └──> queued (transient failure: backoff; quiet hours or
      │          │                the frequency cap: deferred, not dropped)
      │          └────> failed (permanent) | dead (too many attempts)
      └─> suppressed (nobody reachable, no consent, unsubscribed)

A worker claims due rows with `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite
has one writer) and marks them `sending` with a lease. It sends outside any
transaction, then records each result. A worker killed in between leaves its
rows `sending`; once the lease expires another worker claims them again, so
at most the messages in flight at the kill can go out twice.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.db import insert_ignoring_conflicts
from app.models import ChannelOptOut, Notification, NotificationEvent

QUEUED, SENDING, SENT, DELIVERED = "queued", "sending", "sent", "delivered"
BOUNCED, FAILED, SUPPRESSED, DEAD = "bounced", "failed", "suppressed", "dead"
FINAL = {DELIVERED, BOUNCED, FAILED, SUPPRESSED, DEAD}
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=2)


def enqueue(
    session: Session,
    *,
    shop_id: int,
    key: str,
    kind: str,
    category: str,
    channel: str,
    recipient: str,
    locale: str,
    context: dict,
    now: datetime,
    customer_id: int | None = None,
    order_id: int | None = None,
    suppressed_because: str | None = None,
) -> bool:
    """Queue a notification (or record why it cannot go); False if one with
    the same key exists already. Does not commit: the caller's transaction
    holds both the cause and the message."""
    status = SUPPRESSED if suppressed_because else QUEUED
    inserted = insert_ignoring_conflicts(
        session,
        Notification.__table__,
        {
            "shop_id": shop_id,
            "key": key,
            "kind": kind,
            "category": category,
            "customer_id": customer_id,
            "order_id": order_id,
            "channel": channel,
            "recipient": recipient,
            "locale": locale,
            "context": json.dumps(context, default=str, sort_keys=True),
            "status": status,
            "status_detail": suppressed_because,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        },
    )
    if inserted:
        notification_id = session.exec(
            select(Notification.id).where(Notification.shop_id == shop_id, Notification.key == key)
        ).one()
        _event(session, shop_id, notification_id, status, suppressed_because, now)
    return inserted


def _event(session, shop_id, notification_id, status, detail, now) -> None:
    session.add(
        NotificationEvent(
            shop_id=shop_id, notification_id=notification_id, status=status, detail=detail, at=now
        )
    )


def transition(
    session: Session, notification: Notification, status: str, now: datetime,
    detail: str | None = None, **values,
) -> None:  # fmt: skip
    """Move a notification to `status`, recording the change."""
    session.exec(
        update(Notification)
        .where(Notification.id == notification.id)
        .values(status=status, status_detail=detail, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    _event(session, notification.shop_id, notification.id, status, detail, now)


def claim(engine: Engine, now: datetime, limit: int, lease: timedelta) -> list[Notification]:
    """Take up to `limit` due notifications for this worker."""
    with Session(engine, expire_on_commit=False) as session:
        batch = list(
            session.exec(
                select(Notification)
                .where(
                    or_(
                        (Notification.status == QUEUED) & (Notification.next_attempt_at <= now),
                        (Notification.status == SENDING) & (Notification.lease_until < now),
                    )
                )
                .order_by(Notification.next_attempt_at, Notification.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
        )
        for notification in batch:
            reclaimed = notification.status == SENDING
            transition(
                session, notification, SENDING, now,
                "lease expired: the worker sending it stopped" if reclaimed else None,
                attempts=notification.attempts + 1, lease_until=now + lease,
            )  # fmt: skip
            notification.attempts += 1
        session.commit()
        return batch


def defer(session: Session, notification: Notification, until: datetime, why: str, now) -> None:
    """Not now (quiet hours, the frequency cap): back in the queue, and the
    attempt does not count."""
    transition(
        session, notification, QUEUED, now, why,
        next_attempt_at=until, lease_until=None, attempts=notification.attempts - 1,
    )  # fmt: skip


def retry_later(
    session: Session, notification: Notification, reason: str, now: datetime, max_attempts: int
) -> None:
    if notification.attempts >= max_attempts:
        transition(session, notification, DEAD, now, f"gave up after {max_attempts} attempts: "
                   f"{reason}", lease_until=None)  # fmt: skip
        return
    delay = min(BACKOFF_BASE * 2 ** (notification.attempts - 1), BACKOFF_MAX)
    delay *= 1 + random.random() * 0.2
    transition(
        session, notification, QUEUED, now, reason, next_attempt_at=now + delay, lease_until=None
    )


def opt_out(session: Session, shop_id: int, channel: str, address: str, reason: str, now) -> None:
    insert_ignoring_conflicts(
        session,
        ChannelOptOut.__table__,
        {"shop_id": shop_id, "channel": channel, "address": address, "reason": reason,
         "created_at": now},
    )  # fmt: skip


def opt_in(session: Session, shop_id: int, channel: str, address: str) -> None:
    session.exec(
        ChannelOptOut.__table__.delete().where(
            ChannelOptOut.shop_id == shop_id,
            ChannelOptOut.channel == channel,
            ChannelOptOut.address == address,
        )
    )


def opted_out(session: Session, shop_id: int, channel: str, address: str | None) -> bool:
    if not address:
        return False
    return (
        session.exec(
            select(ChannelOptOut.id).where(
                ChannelOptOut.shop_id == shop_id,
                ChannelOptOut.channel == channel,
                ChannelOptOut.address == address,
            )
        ).first()
        is not None
    )
