"""The outbox survives a worker SIGKILLed in the middle of an SMTP batch.

A real SMTP server (aiosmtpd) on loopback in this process records every
message it accepts, with its Message-ID and the notification it belongs to
(the notification's number is in the recipient, customer+<n>@example.com),
and takes ~30 ms per message so that a batch takes time. ~200 notifications
are queued through `notifications.outbox.enqueue`; a real `python -m app
worker` sends them until the sink is in the middle of a batch, and is then
SIGKILLed. A second worker must finish the job: every notification `sent`,
each delivered at least once, and only what was in flight at the kill (at
most one batch) delivered twice, once the killed worker's lease expired.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller
from processes import WAIT_TIMEOUT, child_env, free_port, wait_until
from sqlalchemy import func
from sqlmodel import Session, select

from app.models import Customer, Notification, NotificationEvent
from app.shops import add_shop
from notifications import outbox, policy
from notifications.rendering import sample_context
from support import ON_POSTGRESQL, SHOP_DOMAIN

pytestmark = pytest.mark.e2e

TOTAL = 200
BATCH_SIZE = 20
LEASE_SECONDS = 3
SINK_DELAY_SECONDS = 0.03  # per message: a batch of 20 takes > 0.6 s
KILL_AFTER = 50  # messages received in all before the kill...
KILL_MID_BATCH = range(8, 13)  # ...and this many of the batch being sent (< BATCH_SIZE)
DEADLINE_SECONDS = WAIT_TIMEOUT  # a guard against a hang, not a measure of speed
RECIPIENT = re.compile(r"customer\+(\d+)@example\.com")


# -- the SMTP sink ---------------------------------------------------------------


@dataclass
class Delivery:
    number: int  # the n of customer+<n>@example.com
    message_id: str
    connection: int  # which SMTP connection (one per worker batch) carried it


@dataclass
class Sink:
    """aiosmtpd handler: records each message, then answers after a delay."""

    delay: float
    deliveries: list[Delivery] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            connection = getattr(session, "sink_connection", None)
            if connection is None:
                connection = session.sink_connection = self.connections
                self.connections += 1
            for address in envelope.rcpt_tos:
                match = RECIPIENT.fullmatch(address)
                assert match, address
                self.deliveries.append(
                    Delivery(int(match.group(1)), str(message["Message-ID"]), connection)
                )
        await asyncio.sleep(self.delay)
        return "250 2.0.0 Message accepted for delivery"

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink(SINK_DELAY_SECONDS)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=WAIT_TIMEOUT)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# -- worker processes --------------------------------------------------------------


def worker_env(env: dict[str, str], smtp_port: int) -> dict[str, str]:
    """A child environment from scratch: nothing of the developer's shell leaks in."""
    return child_env(
        env
        | {
            "CARELOOP_ENV": "test",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "SMTP_SECURITY": "none",
            # One connection per batch, so that the batch in flight at the kill is
            # the last connection's (a batch over several connections is tested
            # in test_email_providers.py).
            "SMTP_CONNECTIONS": "1",
            "CARELOOP_OUTBOX_BATCH_SIZE": str(BATCH_SIZE),
            "CARELOOP_OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
            "CARELOOP_WORKER_POLL_SECONDS": "0.1",
            "CARELOOP_PROVIDER_TIMEOUT": "5",
        }
    )


# -- the test ------------------------------------------------------------------------


def queue_notifications(engine, total: int) -> dict[int, int]:
    """`total` queued shipping emails, one customer each; {n: notification id}."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        shop, _ = add_shop(session, SHOP_DOMAIN, now, name="Northwind Outfitters")
        customers = [
            Customer(
                shop_id=shop.id,
                shopify_id=7_001_000 + n,
                email=f"customer+{n}@example.com",
                first_name="Ana",
                email_consent="subscribed",
            )
            for n in range(total)
        ]
        session.add_all(customers)
        session.flush()
        for n, customer in enumerate(customers):
            context = sample_context("shipping") | {
                "order_name": f"#{5000 + n}",
                "tracking_number": f"1Z999AA1{n:010d}",
            }
            context["tracking_url"] = (
                f"https://www.ups.com/track?tracknum={context['tracking_number']}"
            )
            assert outbox.enqueue(
                session,
                shop_id=shop.id,
                key=f"customer:{7_001_000 + n}:shipping:order:{5_001_000 + n}",
                kind="shipping",
                category=policy.TRANSACTIONAL,
                channel="email",
                recipient=customer.email,
                locale="en",
                context=context,
                now=now,
                customer_id=customer.id,
            )
        session.commit()
        rows = session.exec(select(Notification.id, Notification.recipient)).all()
    return {int(RECIPIENT.fullmatch(recipient).group(1)): id_ for id_, recipient in rows}


def status_counts(engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(Notification.status, func.count()).group_by(Notification.status)
        ).all()
    return dict(rows)


@ON_POSTGRESQL
def test_outbox_survives_a_worker_killed_mid_batch(db, env, sink, processes):
    started = time.monotonic()
    deadline = started + DEADLINE_SECONDS
    handler, port = sink
    ids = queue_notifications(db, TOTAL)
    assert len(ids) == TOTAL
    assert status_counts(db) == {outbox.QUEUED: TOTAL}
    settings = worker_env(env, port)

    first = processes.start("worker-1", "worker", env=settings)

    def mid_batch() -> bool:
        received = handler.snapshot()
        if len(received) < KILL_AFTER:
            return False
        current = received[-1].connection
        return sum(d.connection == current for d in received) in KILL_MID_BATCH

    wait_until(
        mid_batch,
        first,
        "the sink to be in the middle of a batch",
        timeout=deadline - time.monotonic(),
    )
    first.kill()
    at_kill = handler.snapshot()
    killed_connection = at_kill[-1].connection
    assert len(at_kill) < TOTAL, "inconclusive: everything went out before the SIGKILL"
    in_batch = sum(d.connection == killed_connection for d in at_kill)
    assert in_batch < BATCH_SIZE, "inconclusive: the killed batch had been sent whole"
    assert status_counts(db).get(outbox.SENDING) == BATCH_SIZE  # the batch it had claimed

    second = processes.start("worker-2", "worker", env=settings)
    wait_until(
        lambda: status_counts(db) == {outbox.SENT: TOTAL},
        second,
        f"every notification to be sent (now {status_counts(db)})",
        timeout=deadline - time.monotonic(),
    )
    elapsed = time.monotonic() - started

    received = handler.snapshot()
    per_notification = Counter(d.number for d in received)
    duplicates = {n: count for n, count in per_notification.items() if count > 1}
    killed = {d.number for d in received if d.connection == killed_connection}
    print(
        f"\n{len(received)} messages received for {TOTAL} notifications; "
        f"{len(duplicates)} duplicate(s) (delivered on the killed worker's batch: "
        f"{len(killed)}); {elapsed:.1f}s"
    )

    # Every notification reached the sink, and the outbox says `sent` for all of them.
    assert set(per_notification) == set(ids)
    assert status_counts(db) == {outbox.SENT: TOTAL}  # none failed, dead or stuck
    # Only what was in flight at the kill went out twice, and only twice.
    assert len(duplicates) <= BATCH_SIZE
    assert set(duplicates) == killed
    assert set(duplicates.values()) <= {2}

    with Session(db) as session:
        rows = session.exec(
            select(Notification.id, Notification.attempts, Notification.provider_message_id)
        ).all()
        taken_over = session.exec(
            select(NotificationEvent.notification_id).where(
                NotificationEvent.status == outbox.SENDING,
                NotificationEvent.detail.startswith("lease expired"),
            )
        ).all()
    by_id = {id_: (attempts, message_id) for id_, attempts, message_id in rows}
    message_ids = {}
    for delivery in received:
        message_ids.setdefault(delivery.number, []).append(delivery.message_id)
    for n, id_ in ids.items():
        _, message_id = by_id[id_]
        # The Message-ID the outbox recorded is that of the copy sent last.
        assert message_id == message_ids[n][-1], (n, message_id, message_ids[n])
    # The killed worker's claim was taken over once, after the lease, as a second attempt.
    reclaimed = {n for n, id_ in ids.items() if by_id[id_][0] == 2}
    assert len(reclaimed) == BATCH_SIZE
    assert sorted(taken_over) == sorted(ids[n] for n in reclaimed)
    assert killed <= reclaimed
    assert {by_id[id_][0] for n, id_ in ids.items() if n not in reclaimed} == {1}
    # A copy sent again carries the Message-ID of the first, so that the
    # recipient's mail system can fold it; no two notifications share one.
    assert all(len(set(copies)) == 1 for copies in message_ids.values()), message_ids
    assert len({copies[0] for copies in message_ids.values()}) == TOTAL
