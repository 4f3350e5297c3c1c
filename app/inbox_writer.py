"""Group commit for the webhook inbox on PostgreSQL.

Every webhook request must know, before it answers 200, that its delivery is
stored. Stored one by one, each delivery pays a statement (parse, plan, a
round trip through SQLAlchemy and psycopg) and a commit (a WAL flush) of its
own. Here the requests of one process that arrive while a statement is
running wait for it, then go together in the next one: a single
`INSERT … SELECT … FROM (VALUES …) … ON CONFLICT DO NOTHING RETURNING`,
committed once. Nobody waits for a timer: a request that finds no statement
running writes at once, alone, so an idle service answers as fast as before.

There is no writer thread. The first request to arrive writes (the leader);
when its own delivery is stored it hands the role to the first request still
waiting, so no request writes for others after its own answer is known.

Two deliveries with the same source and delivery id never share a statement
(the second waits for the next one), so that each row RETURNING gives back
names exactly one request. Each request learns only whether its row went in;
`app.inbox.store` says why one did not (a duplicate, an unknown shop or an
uninstalled one). If the statement fails, every request in it fails (the web
layer answers 503, Shopify retries) and none of it was stored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from app.inbox import Delivery

MAX_BATCH = 64  # a bound on one statement's size; a process rarely has this many waiting


@dataclass(eq=False)
class _Request:
    delivery: Delivery
    now: datetime
    allow_uninstalled: bool
    # Set when `inserted` or `error` is known, or when this request must lead.
    ready: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    done: bool = False
    inserted: bool = False
    error: BaseException | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.delivery.source, self.delivery.delivery_id

    def outcome(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.inserted


class InboxWriter:
    """Stores deliveries for one engine; thread-safe, one per process."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._lock = threading.Lock()
        self._waiting: list[_Request] = []
        self._writing = False

    def insert(self, delivery: Delivery, now: datetime, allow_uninstalled: bool) -> bool:
        """Whether this delivery's row was inserted (False: it was not, for
        `app.inbox.store` to say why); raises what the statement raised."""
        request = _Request(delivery, now, allow_uninstalled)
        with self._lock:
            self._waiting.append(request)
            request.lead = not self._writing
            self._writing = True
        if not request.lead:
            request.ready.wait()
        if request.lead:
            try:
                while not request.done:
                    self._write(self._take())
            finally:
                self._hand_over()
        return request.outcome()

    def _take(self) -> list[_Request]:
        """The next statement's requests: those waiting, in order of arrival,
        one per delivery key."""
        with self._lock:
            batch: list[_Request] = []
            later: list[_Request] = []
            keys: set[tuple[str, str]] = set()
            for request in self._waiting:
                if request.key in keys or len(batch) == MAX_BATCH:
                    later.append(request)
                else:
                    keys.add(request.key)
                    batch.append(request)
            self._waiting = later
            return batch

    def _hand_over(self) -> None:
        with self._lock:
            if self._waiting:
                successor = self._waiting[0]
                successor.lead = True
                successor.ready.set()
            else:
                self._writing = False

    def _write(self, batch: list[_Request]) -> None:
        try:
            # Autocommit: the one statement is atomic by itself.
            autocommit = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with autocommit as conn:
                rows = conn.exec_driver_sql(_statement(len(batch)), tuple(_parameters(batch))).all()
            inserted = {(source, delivery_id) for source, delivery_id in rows}
            for request in batch:
                request.inserted = request.key in inserted
        except BaseException as exc:  # every request in the statement learns of it
            for request in batch:
                request.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for request in batch:
                request.done = True
                request.ready.set()


def _parameters(batch: list[_Request]):
    """Each delivery's values, in the order of `_statement`'s VALUES columns."""
    for request in batch:
        delivery = request.delivery
        by_domain = isinstance(delivery.shop, str)
        yield from (
            delivery.source, delivery.topic, delivery.delivery_id, delivery.event_id,
            delivery.api_version, delivery.triggered_at, request.now, delivery.body,
            delivery.shop if by_domain else None, None if by_domain else delivery.shop,
            request.allow_uninstalled,
        )  # fmt: skip


@lru_cache(maxsize=MAX_BATCH)
def _statement(rows: int) -> str:
    """The INSERT for `rows` deliveries. VALUES columns are named column1…
    by PostgreSQL; the casts give columns that are NULL in every row their
    type."""
    placeholders = ", ".join(["(" + ", ".join(["%s"] * 11) + ")"] * rows)
    return f"""
        INSERT INTO inbox (shop_id, source, topic, delivery_id, event_id, api_version,
                           triggered_at, received_at, body, status, attempts, next_attempt_at)
        SELECT shops.id, v.column1::text, v.column2::text, v.column3::text, v.column4::text,
               v.column5::text, v.column6::timestamptz, v.column7::timestamptz,
               v.column8::text, 'pending', 0, v.column7::timestamptz
        FROM (VALUES {placeholders}) AS v
        JOIN shops ON shops.id = COALESCE(
            v.column10::bigint,
            (SELECT by_domain.id FROM shops AS by_domain WHERE by_domain.domain = v.column9::text)
        )
        WHERE shops.uninstalled_at IS NULL OR v.column11::boolean
        ON CONFLICT DO NOTHING
        RETURNING source, delivery_id
    """
