"""Prometheus metrics.

Counters live in the process that counts (web: received and rejected;
worker: processed). Under gunicorn, set PROMETHEUS_MULTIPROC_DIR so that the
worker processes' counters are summed. Inbox depth and lag are read from the
database at scrape time, so they are true whichever process answers.
"""

from __future__ import annotations

import os
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from app.clock import to_utc
from app.models import InboxMessage, Notification

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The *_created series double the output and no dashboard of ours uses them.
disable_created_metrics()

WEBHOOKS_RECEIVED = Counter(
    "careloop_webhooks_received_total",
    "Webhook deliveries accepted (stored or duplicate).",
    ["source", "topic", "result"],
)
WEBHOOKS_REJECTED = Counter(
    "careloop_webhooks_rejected_total",
    "Webhook deliveries refused, by reason.",
    ["source", "reason"],
)
INBOX_PROCESSED = Counter(
    "careloop_inbox_processed_total",
    "Inbox messages processed by this process's workers.",
    ["source", "outcome"],
)


class InboxCollector:
    """Inbox depth by status, the age of the oldest due message, and the
    outbox by status."""

    def __init__(self, engine: Engine, now: datetime):
        self.engine = engine
        self.now = now

    def collect(self):
        with self.engine.connect() as conn:
            inbox = conn.execute(
                select(InboxMessage.status, func.count()).group_by(InboxMessage.status)
            ).all()
            # Lag is how far behind the workers are: the oldest message that is
            # due now. Messages waiting out a retry backoff are not late.
            oldest_due = conn.execute(
                select(func.min(InboxMessage.next_attempt_at)).where(
                    InboxMessage.status == "pending", InboxMessage.next_attempt_at <= self.now
                )
            ).scalar()
            notifications = conn.execute(
                select(Notification.status, func.count()).group_by(Notification.status)
            ).all()
        depth = GaugeMetricFamily(
            "careloop_inbox_messages", "Inbox messages by status.", labels=["status"]
        )
        for status, count in (
            {"pending": 0, "done": 0, "dead": 0, "parked": 0} | dict(inbox)
        ).items():
            depth.add_metric([status], count)
        yield depth
        lag = (self.now - to_utc(oldest_due)).total_seconds() if oldest_due else 0.0
        yield GaugeMetricFamily(
            "careloop_inbox_lag_seconds",
            "How long the oldest due inbox message has been waiting for a worker.",
            value=max(lag, 0.0),
        )
        outbox = GaugeMetricFamily(
            "careloop_notifications", "Notifications by status.", labels=["status"]
        )
        for status, count in sorted(dict(notifications).items()):
            outbox.add_metric([status], count)
        yield outbox


def exposition(engine: Engine, now: datetime) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    database = CollectorRegistry(auto_describe=False)
    database.register(InboxCollector(engine, now))
    return generate_latest(counters) + generate_latest(database)
