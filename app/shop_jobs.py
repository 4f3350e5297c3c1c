"""Per-shop scheduled work as rows: the scheduler decides what is due and
enqueues it; the workers run it.

    queued ─> running ─> done
      ^          │
      └──────────┴─> dead (after `max_attempts`; `careloop jobs retry` requeues)
        (a failure, or a worker that died with the lease)

Each kind of job says when it is due for a shop (`Every` n minutes, or
`DailyAt` a local time in the shop's time zone) and which shops it concerns.
Enqueuing is one INSERT … SELECT per kind (per time zone for daily kinds),
keyed by (shop, kind, slot), so running it every minute, from any number of
schedulers in turn, queues each slot once. Workers claim one row at a time
(`FOR UPDATE SKIP LOCKED` on PostgreSQL) under a lease, run it outside that
transaction, and record the result; one shop's failure is its own row's
`last_error`, retried with backoff, and delays no other shop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, literal, or_, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from sqlmodel.sql.sqltypes import UTCDateTime

from app.db import insert_ignoring_conflicts, wake_workers
from app.models import Shop, ShopJob
from app.retry import backoff_seconds

QUEUED, RUNNING, DONE, DEAD = "queued", "running", "done", "dead"
BACKOFF = (60, 3600)  # seconds: the first retry's delay, and the longest


class Schedule(Protocol):
    def slot(self, now: datetime, timezone: ZoneInfo) -> str | None:
        """The run due at `now` for a shop in `timezone`, or None if none is."""


@dataclass(frozen=True)
class Every:
    """Once per `minutes`, on UTC boundaries."""

    minutes: int

    def slot(self, now: datetime, timezone: ZoneInfo) -> str | None:
        start = now.replace(second=0, microsecond=0)
        start -= timedelta(minutes=(start.hour * 60 + start.minute) % self.minutes)
        return start.strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True)
class DailyAt:
    """Once a day, from `at` in the shop's own time zone: a nightly report
    runs at its night, not at UTC's."""

    at: time

    def slot(self, now: datetime, timezone: ZoneInfo) -> str | None:
        local = now.astimezone(timezone)
        return local.date().isoformat() if local.time() >= self.at else None


@dataclass(frozen=True)
class ShopSchedule:
    """When a kind of job is due, and for which shops."""

    schedule: Schedule
    concerns: ColumnElement[bool] = field(default_factory=lambda: true())  # on `shops`


def enqueue_due(engine: Engine, due: Mapping[str, ShopSchedule], now: datetime) -> int:
    """Queue each kind's current slot (`due`: the schedule of each kind) for
    each shop it concerns; returns how many rows were new. Uninstalled shops
    get no work."""
    queued = 0
    with Session(engine) as session:
        timezones = session.exec(
            select(Shop.timezone).where(Shop.uninstalled_at.is_(None)).distinct()
        ).all()
        for kind, when in due.items():
            by_slot: dict[str, list[str]] = {}
            for name in timezones:
                slot = when.schedule.slot(now, _zone(name))
                if slot is not None:
                    by_slot.setdefault(slot, []).append(name)
            for slot, names in by_slot.items():
                queued += _insert_slot(session, kind, when, slot, names, now)
        session.commit()
    return queued


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # a shop's setting we cannot read: UTC
        return ZoneInfo("UTC")


def _insert_slot(
    session: Session, kind: str, when: ShopSchedule, slot: str, timezones: list[str], now: datetime
) -> int:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    shops = select(
        Shop.id,
        literal(kind),
        literal(slot),
        literal(QUEUED),
        literal(0),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    ).where(Shop.uninstalled_at.is_(None), Shop.timezone.in_(timezones), when.concerns)
    columns = ["shop_id", "kind", "slot", "status", "attempts", "due_at", "created_at"]
    table = ShopJob.__table__
    statement = (
        insert(table).from_select(columns, shops).on_conflict_do_nothing().returning(table.c.id)
    )
    # Counted from RETURNING: psycopg reports no rowcount for INSERT … SELECT here.
    queued = len(session.exec(statement).all())
    if queued:
        wake_workers(session)
    return queued


def enqueue_once(
    session: Session, shop_id: int, kind: str, slot: str, now: datetime,
    due_at: datetime | None = None,
) -> bool:  # fmt: skip
    """Queue one job for a shop, now or at `due_at` (work a request causes,
    such as an install's, which should not run inside that request; a survey
    due after a delay); False if that slot was queued already. The caller
    commits."""
    values = {"shop_id": shop_id, "kind": kind, "slot": slot, "status": QUEUED,
              "attempts": 0, "due_at": due_at or now, "created_at": now}  # fmt: skip
    queued = insert_ignoring_conflicts(session, ShopJob.__table__, values) is not None
    if queued and due_at is None:
        wake_workers(session)  # due now: a free worker starts it at once
    return queued


def claim(engine: Engine, now: datetime, lease: timedelta) -> ShopJob | None:
    """Take one due job: a queued one whose time has come, or a running one
    whose worker's lease ran out."""
    with Session(engine, expire_on_commit=False) as session:
        job = session.exec(
            select(ShopJob)
            .where(
                or_(
                    (ShopJob.status == QUEUED) & (ShopJob.due_at <= now),
                    (ShopJob.status == RUNNING) & (ShopJob.lease_until < now),
                )
            )
            .order_by(ShopJob.due_at, ShopJob.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if job is None:
            return None
        job.status, job.lease_until = RUNNING, now + lease
        job.attempts += 1
        session.add(job)
        session.commit()
        return job


def finish(engine: Engine, job: ShopJob, now: datetime) -> None:
    _record(engine, job, status=DONE, finished_at=now, last_error=None)


def fail(engine: Engine, job: ShopJob, error: BaseException, now: datetime, max_attempts: int):
    """Record the failure on the row; retry with backoff, or give up visibly."""
    dead = job.attempts >= max_attempts
    _record(
        engine,
        job,
        status=DEAD if dead else QUEUED,
        due_at=now if dead else now + timedelta(seconds=backoff_seconds(job.attempts, *BACKOFF)),
        finished_at=now if dead else None,
        last_error=f"{type(error).__name__}: {error}"[:2000],
    )


def _record(engine: Engine, job: ShopJob, **values) -> None:
    """Write a result, unless another worker has taken the job since (our
    lease ran out): its result is the one that counts."""
    with Session(engine) as session:
        session.exec(
            update(ShopJob)
            .where(
                ShopJob.id == job.id,
                ShopJob.status == RUNNING,
                ShopJob.lease_until == job.lease_until,
            )
            .values(lease_until=None, **values)
        )
        session.commit()


def retry_dead(engine: Engine, shop_id: int | None, now: datetime) -> int:
    """Requeue dead jobs (of one shop, or of all); returns how many."""
    with Session(engine) as session:
        query = update(ShopJob).where(ShopJob.status == DEAD)
        if shop_id is not None:
            query = query.where(ShopJob.shop_id == shop_id)
        count = session.exec(
            query.values(status=QUEUED, attempts=0, due_at=now, finished_at=None)
        ).rowcount
        session.commit()
        return count


def purge_done(engine: Engine, before: datetime) -> int:
    """Delete finished jobs older than `before`; dead ones stay until retried."""
    with Session(engine) as session:
        count = session.exec(
            ShopJob.__table__.delete().where(ShopJob.status == DONE, ShopJob.finished_at < before)
        ).rowcount
        session.commit()
        return count
