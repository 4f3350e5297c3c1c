"""What `/readyz` reports besides "the database answers": the signs that
the service is up but falling behind or failing, for an operator or a
monitor to see in one request.

Each figure is one indexed query (the inbox and the outbox are indexed on
status, next_attempt_at), and counts stop at COUNT_CAP so that a large
backlog does not make the check itself slow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.engine import Connection
from sqlmodel import select

from app.clock import to_utc
from app.models import InboxMessage, Notification

# The oldest due webhook waiting longer than this means the workers are
# behind (or not running): Shopify's own timeline for retries is hours, ours
# should be seconds.
INBOX_LAG_LIMIT = timedelta(minutes=5)
COUNT_CAP = 1000


def _count(conn: Connection, query) -> int:
    return conn.execute(
        select(func.count()).select_from(query.limit(COUNT_CAP).subquery())
    ).scalar()


def report(conn: Connection, now: datetime) -> dict:
    """The figures, and `degraded`: what is wrong, in words (empty when all is well)."""
    oldest_due = conn.execute(
        select(func.min(InboxMessage.next_attempt_at)).where(
            InboxMessage.status == "pending", InboxMessage.next_attempt_at <= now
        )
    ).scalar()
    lag = max((now - to_utc(oldest_due)).total_seconds(), 0.0) if oldest_due else 0.0
    inbox_dead = _count(conn, select(InboxMessage.id).where(InboxMessage.status == "dead"))
    notifications_dead = _count(conn, select(Notification.id).where(Notification.status == "dead"))
    # A queued notification that has used an attempt failed transiently at
    # its provider and waits for its retry (deferrals give the attempt back).
    retrying = _count(
        conn,
        select(Notification.id).where(Notification.status == "queued", Notification.attempts > 0),
    )
    degraded = []
    if lag > INBOX_LAG_LIMIT.total_seconds():
        degraded.append(f"inbox: the oldest due webhook has waited {int(lag)} s for a worker")
    if inbox_dead:
        degraded.append(f"inbox: {inbox_dead} dead letter(s) (careloop inbox list)")
    if notifications_dead:
        degraded.append(f"notifications: {notifications_dead} gave up after retries")
    if retrying:
        degraded.append(f"notifications: {retrying} waiting to retry after a provider failure")
    return {
        "inbox_lag_seconds": round(lag, 1),
        "inbox_dead": inbox_dead,
        "notifications_dead": notifications_dead,
        "notifications_retrying": retrying,
        "degraded": degraded,
    }
