"""The webhook inbox: store a delivery once, then process it durably.

Receiving is one statement on the hot path: the INSERT selects the shop by
domain (and that it is installed) and ignores a conflict on either dedupe key,
so a new delivery costs one round trip, and on PostgreSQL concurrent requests
share it (`app.inbox_writer`). Only when nothing was inserted do we look again
to say why (unknown shop, uninstalled, or a duplicate).

Processing claims one due row at a time (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several workers share the queue), applies it in the same
transaction, and marks it done. A worker that dies mid-way holds only a
transaction, which the database rolls back: the row is simply due again.
Failures are recorded and retried with exponential backoff and jitter; after
`max_attempts`, or at once for a payload that can never be understood, the row
is dead-lettered, where it stays visible and can be retried by hand.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import ModuleType

import orjson
from sqlalchemy import bindparam, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError
from sqlmodel import Session, select
from sqlmodel.sql.sqltypes import UTCDateTime

from app import rules
from app.events import PayloadError
from app.inbox_writer import InboxWriter
from app.logs import add_log_context
from app.models import InboxMessage, ParkedReference, Shop
from app.orders import Cause, OrderNotKnown, apply
from app.privacy import REDACTED_BODY, concerns_redacted
from app.providers import PROVIDERS, WebhookProvider
from app.retry import backoff_seconds
from integrations import shopify

log = logging.getLogger(__name__)

# Each source's module knows its payloads: parse(topic, payload, triggered_at)
# and references(topic, payload). Shopify's own, and every provider's.
PARSERS: dict[str, WebhookProvider | ModuleType] = {shopify.SOURCE: shopify, **PROVIDERS}

BACKOFF_BASE_SECONDS = 10
BACKOFF_MAX_SECONDS = 3600
# A parked message is normally woken by the order it waits for; it is also
# looked at again on this period, in case the two crossed in flight.
PARK_RECHECK = timedelta(minutes=15)


class StoreResult(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNKNOWN_SHOP = "unknown_shop"
    UNINSTALLED = "uninstalled"


@dataclass(frozen=True)
class Delivery:
    """A verified delivery for a shop, named by its domain (Shopify) or its
    id (providers, whose connection says which shop)."""

    source: str
    shop: str | int
    topic: str
    delivery_id: str
    event_id: str | None
    api_version: str | None
    triggered_at: datetime | None
    body: str


def _store_sql(shop_column: str):
    return text(
        f"""
        INSERT INTO inbox (shop_id, source, topic, delivery_id, event_id, api_version,
                           triggered_at, received_at, body, status, attempts, next_attempt_at)
        SELECT shops.id, :source, :topic, :delivery_id, :event_id, :api_version,
               :triggered_at, :now, :body, 'pending', 0, :now
        FROM shops
        WHERE shops.{shop_column} = :shop
          AND (shops.uninstalled_at IS NULL OR :allow_uninstalled)
        ON CONFLICT DO NOTHING
        RETURNING id
        """
    ).bindparams(
        bindparam("triggered_at", type_=UTCDateTime()),
        bindparam("now", type_=UTCDateTime()),
    )


_STORE_BY_DOMAIN = _store_sql("domain")
_STORE_BY_ID = _store_sql("id")


def store(
    engine: Engine, delivery: Delivery, now: datetime, *, allow_uninstalled: bool
) -> StoreResult:
    """Store a verified delivery; raises if the database cannot take it.

    On PostgreSQL the deliveries of concurrent requests share one statement
    and one commit (`app.inbox_writer`), run in autocommit: BEGIN and COMMIT
    would be two more round trips on the hot path. SQLite, the single-process
    default, takes one writer at a time anyway: each delivery is its own
    statement, in a transaction whose BEGIN IMMEDIATE serialises writers."""
    if engine.dialect.name == "postgresql":
        if _writer(engine).insert(delivery, now, allow_uninstalled):
            return StoreResult.STORED
        with engine.connect() as conn:
            return _why_not_stored(conn, delivery, allow_uninstalled)
    with engine.begin() as conn:
        inserted = conn.execute(
            _STORE_BY_DOMAIN if isinstance(delivery.shop, str) else _STORE_BY_ID,
            {
                "source": delivery.source,
                "topic": delivery.topic,
                "delivery_id": delivery.delivery_id,
                "event_id": delivery.event_id,
                "api_version": delivery.api_version,
                "triggered_at": delivery.triggered_at,
                "now": now,
                "body": delivery.body,
                "shop": delivery.shop,
                "allow_uninstalled": allow_uninstalled,
            },
        ).first()
        if inserted is not None:
            return StoreResult.STORED
        return _why_not_stored(conn, delivery, allow_uninstalled)


def _why_not_stored(conn: Connection, delivery: Delivery, allow_uninstalled: bool) -> StoreResult:
    """Why a delivery's INSERT inserted nothing: its shop is unknown or
    uninstalled, or the delivery is stored already."""
    by_domain = isinstance(delivery.shop, str)
    shop = conn.execute(
        select(Shop.uninstalled_at).where((Shop.domain if by_domain else Shop.id) == delivery.shop)
    ).first()
    if shop is None:
        return StoreResult.UNKNOWN_SHOP
    if shop.uninstalled_at is not None and not allow_uninstalled:
        return StoreResult.UNINSTALLED
    return StoreResult.DUPLICATE


_writers: weakref.WeakKeyDictionary[Engine, InboxWriter] = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def _writer(engine: Engine) -> InboxWriter:
    """The engine's one writer in this process, made on first use."""
    with _writers_lock:
        writer = _writers.get(engine)
        if writer is None:
            writer = _writers[engine] = InboxWriter(engine)
        return writer


def process_next(engine: Engine, now: datetime, max_attempts: int) -> InboxMessage | None:
    """Claim and process one due message; returns it, or None if none was due."""
    with Session(engine, expire_on_commit=False) as session:
        message = session.exec(
            select(InboxMessage)
            .where(InboxMessage.status == "pending", InboxMessage.next_attempt_at <= now)
            .order_by(InboxMessage.next_attempt_at, InboxMessage.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if message is None:
            return None
        add_log_context(
            shop_id=message.shop_id, inbox_id=message.id, webhook_id=message.delivery_id
        )
        failure = _attempt(session, lambda: _process(session, message, now))
        if isinstance(failure, OrderNotKnown):
            references = failure.references
            failure = _attempt(session, lambda: _park(session, message, references, now))
        if failure is not None:
            _record_failure(session, message, failure, now, max_attempts)
        session.commit()
        return message


def _attempt(session: Session, step: Callable[[], None]) -> Exception | None:
    """Run one step of processing in a savepoint; return what it raised.

    Whatever goes wrong with one message (its payload, our code, a lock
    timeout) must count as an attempt on that message and let the next one
    go: a failure that escaped here would leave the row due with its
    attempts unchanged, at the head of every worker's queue. On failure
    only the step is undone, and the row lock is kept while the failure is
    recorded, so no other worker can claim the message in between."""
    try:
        with session.begin_nested():
            step()
    except Exception as exc:  # recorded on the row by the caller, never swallowed
        return exc
    return None


def _process(session: Session, message: InboxMessage, now: datetime) -> None:
    parser = PARSERS.get(message.source)
    if parser is None:
        raise PayloadError(f"no parser for source {message.source!r}")
    try:
        # orjson, as when it was received: the same strict parser, and one that
        # refuses nesting past its limit instead of raising RecursionError.
        payload = orjson.loads(message.body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"stored body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("stored body is not a JSON object")
    cause = Cause(label=f"{message.source}:{message.topic}", inbox_id=message.id, now=now)
    for event in parser.parse(message.topic, payload, message.triggered_at):
        rules.react(session, apply(session, message.shop_id, event, cause), now)
    customer_ref, order_ref = parser.references(message.topic, payload)
    values = {
        "status": "done",
        "processed_at": now,
        "attempts": InboxMessage.attempts + 1,
        "last_error": None,
        "customer_ref": customer_ref,
        "order_ref": order_ref,
    }
    # A late retry of a delivery about a redacted customer must not keep their data.
    if concerns_redacted(session, message.shop_id, customer_ref, order_ref):
        values["body"] = REDACTED_BODY
    session.exec(update(InboxMessage).where(InboxMessage.id == message.id).values(**values))


def _record_failure(
    session: Session, message: InboxMessage, error: Exception, now: datetime, max_attempts: int
) -> None:
    """Count the attempt: back off, or dead-letter at once a payload that can
    never be understood (or whose values the database refuses: that is the
    same payload every time), and after `max_attempts` anything else."""
    permanent = isinstance(error, PayloadError | DataError)
    if isinstance(error, PayloadError):
        log.warning("inbox %s (%s %s) dead-lettered: %s", message.id, message.source,
                    message.topic, type(error).__name__)  # fmt: skip
    else:  # a DataError too: a value our payload checks (integrations.fields) let through
        log.error(
            "inbox %s (%s %s) failed", message.id, message.source, message.topic, exc_info=error
        )
    attempts = message.attempts + 1
    dead = permanent or attempts >= max_attempts
    session.exec(
        update(InboxMessage)
        .where(InboxMessage.id == message.id)
        .values(
            attempts=attempts,
            status="dead" if dead else "pending",
            last_error=_reason(error),
            next_attempt_at=now if dead else now + backoff(attempts),
        )
    )


def _reason(error: Exception) -> str:
    """The failure as stored: readable, bounded, and storable (PostgreSQL
    text cannot hold NUL, which a payload's value quoted in it may carry)."""
    return f"{type(error).__name__}: {error}"[:2000].replace("\x00", "\\x00")


def _park(
    session: Session, message: InboxMessage, references: tuple[str, ...], now: datetime
) -> None:
    """Keep an event for an order we do not know yet until that order arrives."""
    if not references:
        raise PayloadError("the event names no order, shipment or tracking number")
    session.add_all(
        ParkedReference(shop_id=message.shop_id, inbox_id=message.id, reference=reference)
        for reference in references
    )
    session.exec(
        update(InboxMessage)
        .where(InboxMessage.id == message.id)
        .values(
            status="parked",
            next_attempt_at=now + PARK_RECHECK,
            last_error=f"waiting for the order: {', '.join(references)}"[:2000],
        )
    )


def recheck_parked(engine: Engine, now: datetime, give_up_after: timedelta) -> tuple[int, int]:
    """Requeue parked messages whose recheck time has come; dead-letter the
    ones whose order has not arrived within `give_up_after`. Returns
    (requeued, given up)."""
    with Session(engine) as session:
        due = select(InboxMessage.id).where(
            InboxMessage.status == "parked", InboxMessage.next_attempt_at <= now
        )
        expired = due.where(InboxMessage.received_at < now - give_up_after)
        given_up = session.exec(
            update(InboxMessage)
            .where(InboxMessage.id.in_(expired))
            .values(status="dead", last_error="the order it names never arrived")
            .execution_options(synchronize_session=False)
        ).rowcount
        requeued = session.exec(
            update(InboxMessage)
            .where(InboxMessage.id.in_(due))
            .values(status="pending", next_attempt_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.exec(
            ParkedReference.__table__.delete().where(
                ParkedReference.inbox_id.not_in(
                    select(InboxMessage.id).where(InboxMessage.status == "parked")
                )
            )
        )
        session.commit()
        return requeued, given_up


def backoff(attempts: int) -> timedelta:
    """Exponential, capped, with up to 20% jitter so that retries spread out."""
    return timedelta(seconds=backoff_seconds(attempts, BACKOFF_BASE_SECONDS, BACKOFF_MAX_SECONDS))


def retry_dead(engine: Engine, shop_id: int | None, message_ids: list[int], now: datetime) -> int:
    """Put dead-lettered messages back in the queue; returns how many."""
    with Session(engine) as session:
        query = update(InboxMessage).where(InboxMessage.status == "dead")
        if shop_id is not None:
            query = query.where(InboxMessage.shop_id == shop_id)
        if message_ids:
            query = query.where(InboxMessage.id.in_(message_ids))
        count = session.exec(
            query.values(status="pending", attempts=0, next_attempt_at=now)
        ).rowcount
        session.commit()
        return count


def purge_processed(engine: Engine, before: datetime) -> int:
    """Delete processed messages received before `before`: raw bodies hold
    personal data, and we keep them only as long as they help debugging."""
    with Session(engine) as session:
        count = session.exec(
            InboxMessage.__table__.delete().where(
                InboxMessage.status == "done", InboxMessage.received_at < before
            )
        ).rowcount
        session.commit()
        return count
