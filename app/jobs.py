"""Scheduled jobs, declared in one place with stable ids, and the scheduler
that runs them.

Two kinds: `JOBS`, cheap database-wide statements the scheduler runs itself,
and `SHOP_JOBS`, work for each shop that the scheduler only enqueues as rows
(`app.shop_jobs`) and the workers run (`run_shop_jobs`), so that one slow
shop delays no other and more workers mean more throughput.

In production several `careloop scheduler` replicas may run; one is elected
with a PostgreSQL advisory lock held on a dedicated connection, the others
stand by and take over when that connection goes away. SQLite deployments
are single-process (`careloop run`) and need no election.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import and_, exists, select, text
from sqlalchemy.exc import SQLAlchemyError

from app import (
    birthdays,
    delay_checks,
    flow,
    history_import,
    inbox,
    install,
    reconcile,
    recovery,
    retention_snapshots,
    shop_jobs,
    surveys,
)
from app.logs import log_context
from app.models import CustomerActivity, Shop, Survey, Ticket
from app.runtime import Runtime
from app.shop_jobs import DailyAt, Every, ShopSchedule
from app.tickets import SURVEY_SWEEP

log = logging.getLogger(__name__)

# Any fixed 64-bit number unique to this lock's purpose.
SCHEDULER_LOCK_KEY = 0x436172654C6F6F70  # "CareLoop"
STANDBY_RECHECK_SECONDS = 5
# An event for an order that has not arrived in two weeks is not coming.
PARKED_GIVE_UP = timedelta(days=14)
SHOP_JOB_MAX_ATTEMPTS = 5
# Long enough for the slowest shop job (a reconciliation reads pages of 100
# orders under Shopify's throttle); a worker that dies holds its job this long.
SHOP_JOB_LEASE = timedelta(minutes=30)
SHOP_JOB_RETENTION = timedelta(days=7)


def purge_inbox(rt: Runtime) -> None:
    before = rt.clock.now() - timedelta(days=rt.settings.inbox_retention_days)
    count = inbox.purge_processed(rt.engine, before)
    log.info("purged %d processed inbox messages received before %s", count, before)


def recheck_parked(rt: Runtime) -> None:
    requeued, given_up = inbox.recheck_parked(rt.engine, rt.clock.now(), PARKED_GIVE_UP)
    if requeued or given_up:
        log.info("parked events: %d requeued, %d given up", requeued, given_up)
    rt.inbox_wakeup.set()


def sweep_birthdays(rt: Runtime, shop_id: int) -> None:
    greeted = birthdays.sweep(rt, shop_id)
    if greeted:
        log.info("shop %s: %d birthday greetings queued", shop_id, greeted)
        rt.inbox_wakeup.set()


def sweep_rules(rt: Runtime, shop_id: int) -> None:
    checked = delay_checks.sweep(rt.engine, shop_id, rt.clock.now())
    if checked:
        log.info("shop %s: %d orders due for the rules checked", shop_id, checked)
        rt.inbox_wakeup.set()  # messages may be waiting


@dataclass(frozen=True)
class ShopJobKind:
    """What a kind of per-shop job does for one shop (raising on failure,
    which its row, a `models.ShopJob`, records), and when it is due, if it is
    scheduled at all (a request may also queue one: `shop_jobs.enqueue_once`)."""

    run: Callable[[Runtime, int], None]
    due: ShopSchedule | None = None


SHOP_JOBS: dict[str, ShopJobKind] = {
    "orders.reconcile": ShopJobKind(
        reconcile.reconcile_one,
        ShopSchedule(Every(minutes=30), Shop.access_token_encrypted.is_not(None)),
    ),
    install.AFTER_INSTALL: ShopJobKind(install.finish_install),
    # At night in the shop's time zone, as of the day that just ended, for
    # shops with counted orders (orders from before the facts table are
    # brought in by the first `careloop retention run`).
    "retention.snapshot": ShopJobKind(
        lambda rt, shop_id: retention_snapshots.take_snapshot(rt.engine, shop_id, rt.clock.now()),
        ShopSchedule(
            DailyAt(time(2, 30)),
            and_(
                Shop.uninstalled_at.is_(None),
                exists().where(CustomerActivity.shop_id == Shop.id),
            ),
        ),
    ),
    install.RESUBSCRIBE: ShopJobKind(install.resubscribe),
    # Birthday greetings due (`app.birthdays`): an indexed read of the
    # customers due, for the shops that know any birth date.
    birthdays.JOB: ShopJobKind(
        sweep_birthdays, ShopSchedule(Every(minutes=15), birthdays.KNOWS_BIRTHDAYS)
    ),
    # Time-driven rules (delays, escalations): what is due now, by the
    # orders' stored due times (`app.delay_checks`).
    delay_checks.JOB: ShopJobKind(sweep_rules, ShopSchedule(Every(minutes=5))),
    # Flow triggers owed (`app.flow`): queued when a delay is found or a late
    # order delivered; this run catches anything a one-off missed.
    flow.JOB: ShopJobKind(
        flow.fire_owed,
        ShopSchedule(Every(minutes=30), Shop.access_token_encrypted.is_not(None)),
    ),
    # CSAT surveys and reminders whose time has come: only for shops that
    # have one waiting (both due times are indexed).
    # A low rating's apology with a discount code (`app.recovery`): queued
    # when the rating comes, retried while Shopify cannot make the code.
    recovery.JOB: ShopJobKind(recovery.run),
    SURVEY_SWEEP: ShopJobKind(
        surveys.sweep,
        ShopSchedule(
            Every(minutes=5),
            Shop.id.in_(select(Ticket.shop_id).where(Ticket.survey_due_at.is_not(None)))
            | Shop.id.in_(select(Survey.shop_id).where(Survey.reminder_due_at.is_not(None))),
        ),
    ),
}


def enqueue_shop_jobs(rt: Runtime) -> None:
    due = {kind: job.due for kind, job in SHOP_JOBS.items() if job.due is not None}
    queued = shop_jobs.enqueue_due(rt.engine, due, rt.clock.now())
    if queued:
        log.info("queued %d shop jobs", queued)
        rt.inbox_wakeup.set()  # an in-process worker starts on them at once


def purge_shop_jobs(rt: Runtime) -> None:
    shop_jobs.purge_done(rt.engine, rt.clock.now() - SHOP_JOB_RETENTION)


def run_shop_jobs(rt: Runtime, stop: threading.Event | None = None) -> int:
    """The worker's part: run due shop jobs one by one until none is due;
    returns how many ran. A failing job is recorded on its row and retried
    later; the next job goes on."""
    count = 0
    while stop is None or not stop.is_set():
        job = shop_jobs.claim(rt.engine, rt.clock.now(), SHOP_JOB_LEASE)
        if job is None:
            return count
        count += 1
        try:
            kind = SHOP_JOBS.get(job.kind)
            if kind is None:
                raise LookupError(f"no job kind {job.kind!r} in this version")
            kind.run(rt, job.shop_id)
        except Exception as exc:  # recorded on the job's row, logged with its traceback
            log.exception("shop job %s (%s, shop %s) failed", job.id, job.kind, job.shop_id)
            shop_jobs.fail(rt.engine, job, exc, rt.clock.now(), SHOP_JOB_MAX_ATTEMPTS)
        else:
            shop_jobs.finish(rt.engine, job, rt.clock.now())
    return count


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[[Runtime], None]
    trigger: BaseTrigger


JOBS = (
    Job("inbox.purge", purge_inbox, CronTrigger(hour=3, minute=17)),
    Job("inbox.recheck_parked", recheck_parked, IntervalTrigger(minutes=5)),
    Job("imports.advance", history_import.advance_all, IntervalTrigger(minutes=1)),
    Job("shop_jobs.enqueue", enqueue_shop_jobs, IntervalTrigger(minutes=1)),
    Job("shop_jobs.purge", purge_shop_jobs, CronTrigger(hour=3, minute=29)),
)


def _with_log_context(job: Job) -> Callable[[Runtime], None]:
    """The job's function, its log lines carrying the job and the run."""

    def run_logged(rt: Runtime) -> None:
        with log_context(job_id=f"{job.id}:{uuid.uuid4().hex[:8]}"):
            job.func(rt)

    return run_logged


def build_scheduler(rt: Runtime) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    for job in JOBS:
        scheduler.add_job(
            _with_log_context(job),
            job.trigger,
            args=[rt],
            id=job.id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
    return scheduler


class LeaderLock:
    """A session-level advisory lock: held while its connection lives."""

    def __init__(self, rt: Runtime):
        self.engine = rt.engine
        self.connection = None

    def acquire(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True
        try:
            connection = self.engine.connect()
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": SCHEDULER_LOCK_KEY}
            ).scalar()
            connection.commit()
        except SQLAlchemyError as exc:
            log.warning("scheduler election failed: %s", type(exc).__name__)
            return False
        if not got:
            connection.close()
            return False
        self.connection = connection
        return True

    def held(self) -> bool:
        if self.connection is None:
            return self.engine.dialect.name != "postgresql"
        try:
            self.connection.execute(text("SELECT 1"))
            self.connection.commit()
            return True
        except SQLAlchemyError:
            self.connection = None
            return False

    def release(self) -> None:
        if self.connection is not None:
            self.connection.close()  # closing the session releases the lock
            self.connection = None


def run(rt: Runtime, stop: threading.Event) -> None:
    """Run the jobs while this process is the elected scheduler."""
    lock = LeaderLock(rt)
    while not stop.is_set():
        if not lock.acquire():
            log.info("another scheduler is active; standing by")
            stop.wait(STANDBY_RECHECK_SECONDS)
            continue
        scheduler = build_scheduler(rt)
        scheduler.start()
        log.info("scheduler active with jobs: %s", ", ".join(j.id for j in JOBS))
        while not stop.is_set() and lock.held():
            stop.wait(STANDBY_RECHECK_SECONDS)
        scheduler.shutdown(wait=True)
        lock.release()
    log.info("scheduler stopped")
