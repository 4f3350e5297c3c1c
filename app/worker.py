"""The worker: a thin loop that processes the webhook inbox (`app.inbox`)
and then sends what the outbox holds (`notifications.dispatch`)."""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from app import inbox, jobs, metrics, rules
from app.db import WAKE_CHANNEL
from app.logs import log_context
from app.runtime import Runtime
from notifications.dispatch import dispatch_batch
from notifications.transports import Transports, from_settings

log = logging.getLogger(__name__)
DATABASE_RETRY_SECONDS = 5


def drain(rt: Runtime, stop: threading.Event | None = None) -> int:
    """Process due inbox messages until none is due; returns how many."""
    count = 0
    while stop is None or not stop.is_set():
        with log_context():  # each message's lines carry its shop and ids
            message = inbox.process_next(rt.engine, rt.clock.now(), rt.settings.inbox_max_attempts)
        if message is None:
            return count
        metrics.INBOX_PROCESSED.labels(message.source, message.status).inc()
        count += 1
    return count


def send_due(rt: Runtime, transports: Transports, stop: threading.Event | None = None) -> int:
    """Send due notifications batch by batch until none is due; returns how many."""
    count = 0
    while stop is None or not stop.is_set():
        claimed = dispatch_batch(rt, transports, rules.no_longer_true, rules.settled)
        if not claimed:
            return count
        count += claimed
    return count


def work_once(rt: Runtime, transports: Transports, stop: threading.Event | None = None) -> int:
    """One round: the inbox (which may queue notifications), the outbox, then
    the shop jobs the scheduler queued."""
    return drain(rt, stop) + send_due(rt, transports, stop) + jobs.run_shop_jobs(rt, stop)


def run(rt: Runtime, stop: threading.Event) -> None:
    """Poll until `stop` is set. A stored webhook sets `rt.inbox_wakeup`, so an
    in-process worker reacts at once; a separate process relies on the poll,
    and on PostgreSQL also wakes when another process queues a shop job
    (`listen`: a large sweep's helper job starts in a free worker at once)."""
    transports = from_settings(rt.settings)
    if rt.engine.dialect.name == "postgresql":
        threading.Thread(target=listen, args=(rt, stop), name="wakeups", daemon=True).start()
    log.info(
        "worker started (poll every %.1fs; email via %s, SMS via %s)",
        rt.settings.worker_poll_seconds,
        transports.email.name if transports.email else "nothing (held)",
        transports.sms.name if transports.sms else "nothing (held)",
    )  # fmt: skip
    while not stop.is_set():
        rt.inbox_wakeup.clear()
        try:
            work_once(rt, transports, stop)
        except SQLAlchemyError as exc:
            # The database is away (restart, failover): nothing is lost, since
            # unfinished messages stay pending; wait and try again.
            log.error("worker: database unavailable (%s); retrying", type(exc).__name__)
            stop.wait(DATABASE_RETRY_SECONDS)
            continue
        except Exception:
            # A bug outside any one message: each message's own failure is an
            # attempt recorded on its row (app.inbox, notifications.dispatch),
            # so this never retries one row forever; claimed outbox rows come
            # back when their lease ends, and count an attempt each time.
            log.exception("worker: unexpected error; carrying on")
            stop.wait(DATABASE_RETRY_SECONDS)
            continue
        rt.inbox_wakeup.wait(rt.settings.worker_poll_seconds)
    log.info("worker stopped")


def listen(rt: Runtime, stop: threading.Event) -> None:
    """Set `rt.inbox_wakeup` whenever work is queued elsewhere (LISTEN on
    `app.db.WAKE_CHANNEL`), until `stop`. A lost connection only means
    waiting for the poll until it is back."""
    conninfo = rt.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {WAKE_CHANNEL}")
                log.info("worker: listening for work queued elsewhere")
                while not stop.is_set():
                    for _notice in conn.notifies(timeout=1.0):
                        rt.inbox_wakeup.set()
        except psycopg.Error as exc:  # the poll carries on meanwhile
            log.warning("worker wake-ups unavailable (%s); polling only", type(exc).__name__)
            stop.wait(DATABASE_RETRY_SECONDS)
