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

from datetime import datetime, timedelta

import orjson
from sqlalchemy import bindparam, case, insert, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.db import insert_ignoring_conflicts, insert_rows
from app.models import ChannelOptOut, Notification, NotificationEvent
from app.retry import backoff_seconds

QUEUED, SENDING, SENT, DELIVERED = "queued", "sending", "sent", "delivered"
BOUNCED, FAILED, SUPPRESSED, DEAD = "bounced", "failed", "suppressed", "dead"
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=2)


def message(
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
    send_at: datetime | None = None,
    rule_id: int | None = None,
    quiet_hours: bool = True,
) -> dict:
    """A notification row for `enqueue_many`: queued, or suppressed with
    the reason it cannot go. `send_at` holds it back (a rule's wait);
    `quiet_hours` False lets an SMS go at night."""
    return {
        "shop_id": shop_id,
        "key": key,
        "kind": kind,
        "category": category,
        "customer_id": customer_id,
        "order_id": order_id,
        "channel": channel,
        "recipient": recipient,
        "locale": locale,
        "context": _context_json(context),
        "status": SUPPRESSED if suppressed_because else QUEUED,
        "status_detail": suppressed_because,
        "attempts": 0,
        "next_attempt_at": send_at or now,
        "created_at": now,
        "updated_at": now,
        "rule_id": rule_id,
        "quiet_hours": quiet_hours,
    }


# orjson, as the rest of the outbox's rows (`app.db`): a sweep builds
# thousands of contexts. Times, dates and decimals as `str` gives them, as
# the templates' filters read them back (`dispatch._revive`).
_CONTEXT_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)  # fmt: skip


def _context_json(context: dict) -> str:
    return orjson.dumps(context, default=str, option=_CONTEXT_OPTIONS).decode()


def enqueue_many(session: Session, rows: list[dict]) -> dict[str, int]:
    """Queue notifications (`message` rows) in one INSERT; the keys that
    were new, with their ids (a key queued already is skipped: the same
    alert is never queued twice). Does not commit: the caller's transaction
    holds both the cause and the messages."""
    if not rows:
        return {}
    returned = insert_rows(session, Notification.__table__, rows, returning=("id", "key"))
    new = {key: notification_id for notification_id, key in returned}
    events = [
        {"shop_id": row["shop_id"], "notification_id": new[row["key"]], "status": row["status"],
         "detail": row["status_detail"], "at": row["created_at"]}
        for row in rows if row["key"] in new
    ]  # fmt: skip
    insert_rows(session, NotificationEvent.__table__, events)
    return new


def enqueue(session: Session, **fields) -> bool:
    """Queue one notification (`message`'s fields); False if one with the
    same key exists already."""
    return bool(enqueue_many(session, [message(**fields)]))


def change(notification: Notification, status: str, now: datetime, detail: str | None = None,
           **values) -> dict:  # fmt: skip
    """A status change for `record_events`."""
    return {"id": notification.id, "shop_id": notification.shop_id, "at": now,
            "status": status, "status_detail": detail, **values}  # fmt: skip


def transition(
    session: Session, notification: Notification, status: str, now: datetime,
    detail: str | None = None, **values,
) -> None:  # fmt: skip
    """Move one notification to `status`, recording the change."""
    record_events(session, [change(notification, status, now, detail, **values)])


def claim(engine: Engine, now: datetime, limit: int, lease: timedelta) -> list[Notification]:
    """Take up to `limit` due notifications for this worker, in one UPDATE:
    queued ones whose time has come, and `sending` ones whose worker's lease
    ran out (it died). Each returned row carries the lease it was given,
    which `still_ours` checks before any result is recorded."""
    due = (
        select(Notification.id)
        .where(
            or_(
                (Notification.status == QUEUED) & (Notification.next_attempt_at <= now),
                (Notification.status == SENDING) & (Notification.lease_until < now),
            )
        )
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    reclaimed = case(
        (Notification.status == SENDING, "lease expired: the worker sending it stopped"),
        else_=None,
    )
    with Session(engine, expire_on_commit=False) as session:
        batch = list(
            session.exec(
                update(Notification)
                .where(Notification.id.in_(due.scalar_subquery()))
                .values(
                    status=SENDING,
                    status_detail=reclaimed,
                    lease_until=now + lease,
                    attempts=Notification.attempts + 1,
                    updated_at=now,
                )
                .returning(Notification)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
        if batch:
            session.exec(
                insert(NotificationEvent),
                params=[
                    {"shop_id": n.shop_id, "notification_id": n.id, "status": SENDING,
                     "detail": n.status_detail, "at": now}
                    for n in batch
                ],
            )  # fmt: skip
        session.commit()
    return sorted(batch, key=lambda n: n.id)


def still_ours(session: Session, batch: list[Notification]) -> set[int]:
    """Which of a claimed batch this worker still holds (locked until the
    caller commits): a row whose lease ran out mid-send may have been claimed
    by another worker, and its result is then that worker's to record."""
    if not batch:
        return set()
    leases = {n.id: n.lease_until for n in batch}
    rows = session.exec(
        select(Notification.id, Notification.lease_until)
        .where(Notification.id.in_(leases), Notification.status == SENDING)
        .with_for_update()
    ).all()
    return {nid for nid, lease in rows if lease == leases[nid]}


def record_events(session: Session, rows: list[dict]) -> None:
    """Many status changes at once: each dict has the notification's `id` and
    `shop_id`, the time `at`, the new `status`, and any other column to set.
    Rows that set the same columns go in one executemany."""
    table = Notification.__table__
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        columns = tuple(sorted(k for k in row if k not in ("id", "shop_id", "at")))
        groups.setdefault(columns, []).append(row)
    for columns, group in groups.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({name: bindparam(f"new_{name}") for name in columns}
                    | {"updated_at": bindparam("new_at")})
        )  # fmt: skip
        session.exec(
            statement,
            params=[
                {"row_id": r["id"], "new_at": r["at"]} | {f"new_{c}": r[c] for c in columns}
                for r in group
            ],
        )
    if rows:
        session.exec(
            insert(NotificationEvent),
            params=[
                {"shop_id": r["shop_id"], "notification_id": r["id"], "status": r["status"],
                 "detail": r.get("status_detail"), "at": r["at"]}
                for r in rows
            ],
        )  # fmt: skip


def deferred(notification: Notification, until: datetime, why: str, now: datetime) -> dict:
    """Not now (quiet hours, the frequency cap): back in the queue, and the
    attempt does not count."""
    return change(
        notification, QUEUED, now, why,
        next_attempt_at=until, lease_until=None, attempts=notification.attempts - 1,
    )  # fmt: skip


def retry(notification: Notification, reason: str, now: datetime, max_attempts: int) -> dict:
    """Again later, with exponential backoff and jitter; dead after the bound."""
    if notification.attempts >= max_attempts:
        return change(notification, DEAD, now, f"gave up after {max_attempts} attempts: {reason}",
                      lease_until=None)  # fmt: skip
    delay = timedelta(seconds=backoff_seconds(
        notification.attempts, BACKOFF_BASE.total_seconds(), BACKOFF_MAX.total_seconds()
    ))  # fmt: skip
    return change(notification, QUEUED, now, reason, next_attempt_at=now + delay, lease_until=None)


def retry_dead(session: Session, shop_id: int, notification_id: int, now: datetime) -> bool:
    """A dead letter back in the queue with fresh attempts (someone fixed
    what killed it); False if it is not a dead letter of this shop."""
    notification = session.exec(
        select(Notification)
        .where(
            Notification.shop_id == shop_id,
            Notification.id == notification_id,
            Notification.status == DEAD,
        )
        .with_for_update()
    ).first()
    if notification is None:
        return False
    transition(session, notification, QUEUED, now, "retried by hand", attempts=0,
               next_attempt_at=now, lease_until=None)  # fmt: skip
    return True


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
