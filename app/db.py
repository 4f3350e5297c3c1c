"""Engine and sessions. Nothing here connects at import time."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

import orjson
from sqlalchemy import ColumnElement, DateTime, Table, any_, bindparam, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import TextClause
from sqlmodel import Session, create_engine


def make_engine(database_url: str, **kwargs) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN and breaks
        # SELECT-then-UPDATE claims; we emit BEGIN IMMEDIATE ourselves so that a
        # writer takes the write lock up front instead of failing on upgrade.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    # No pre-ping: it would cost a round trip on every webhook. A connection
    # that died is detected on use, the pool is invalidated, and the request
    # answers 5xx (the sender retries) or the worker tries again.
    # As many pooled connections as a web process has threads (gunicorn.conf.py):
    # busy threads then never open and close overflow connections per request.
    kwargs.setdefault("pool_size", 8)
    return create_engine(database_url, pool_recycle=1800, **kwargs)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # autocommit at driver level; see "begin" above
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def insert_ignoring_conflicts(session: Session, table, values: dict) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING on either database; the new row's id,
    or None if a conflicting row was there already."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # RETURNING rather than rowcount, which psycopg reports as -1 here.
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    return session.exec(statement).scalar()


# The PostgreSQL channel a worker listens on (`app.worker`): work queued in
# one process wakes the idle workers of the others at commit, instead of at
# their next poll.
WAKE_CHANNEL = "careloop_work"


def wake_workers(session: Session) -> None:
    """Work was queued in this transaction: on PostgreSQL, tell the idle
    workers when it commits (NOTIFY; nothing if it rolls back). SQLite is
    one process, whose worker the caller wakes itself."""
    if session.get_bind().dialect.name == "postgresql":
        session.exec(text(f"NOTIFY {WAKE_CHANNEL}"))


def insert_rows(
    session: Session, table: Table, rows: list[dict], *, returning: tuple[str, ...] = ("id",)
) -> list[tuple]:
    """INSERT many rows (dicts with the same keys) in one statement, skipping
    those that conflict with a unique key; the `returning` columns of the
    rows that went in.

    On PostgreSQL the rows travel as one JSON document, unpacked by the
    server (`json_to_recordset`): a short statement, parsed and planned
    once, instead of a VALUES list as long as the batch, whose text costs
    the driver and the server more than the insert itself
    (bench/delay_sweep.py). SQLite is in-process: one multi-row INSERT."""
    if not rows:
        return []
    if session.get_bind().dialect.name != "postgresql":
        back = [table.c[name] for name in returning]
        return list(
            session.exec(
                sqlite_insert(table).on_conflict_do_nothing().returning(*back), params=rows
            ).all()
        )
    statement = _insert_statement(table, tuple(rows[0]), returning)
    returned = session.exec(statement, params={"rows": _json(table, rows)}).all()
    return [tuple(row) for row in returned]


@lru_cache(maxsize=64)
def _insert_statement(
    table: Table, names: tuple[str, ...], returning: tuple[str, ...]
) -> TextClause:
    return text(
        f"INSERT INTO {_quoted(table.name)} ({_quoted(*names)}) "
        f"SELECT {_quoted(*names)} FROM {_recordset(table, names)} "
        f"ON CONFLICT DO NOTHING RETURNING {_quoted(*returning)}"
    )


def update_rows(session: Session, table: Table, rows: list[dict]) -> None:
    """UPDATE many rows by `id`, each to its own values (dicts with the same
    keys, `id` among them): one statement on PostgreSQL (as `insert_rows`),
    one executemany on SQLite."""
    if not rows:
        return
    names = [name for name in rows[0] if name != "id"]
    if session.get_bind().dialect.name != "postgresql":
        statement = (
            table.update()
            .where(table.c.id == bindparam("_id"))
            .values({name: bindparam(name) for name in names})
        )
        session.exec(statement, params=[{**row, "_id": row["id"]} for row in rows])
        return
    session.exec(_update_statement(table, tuple(names)), params={"rows": _json(table, rows)})


@lru_cache(maxsize=64)
def _update_statement(table: Table, names: tuple[str, ...]) -> TextClause:
    assignments = ", ".join(f"{_quoted(name)} = r.{_quoted(name)}" for name in names)
    return text(
        f"UPDATE {_quoted(table.name)} SET {assignments} "
        f"FROM {_recordset(table, ('id', *names))} WHERE {_quoted(table.name)}.id = r.id"
    )


def among(session: Session, column, values) -> ColumnElement[bool]:
    """`column IN values` for a batch's hundreds of ids: on PostgreSQL one
    array parameter (`= ANY`) rather than a placeholder per value, which the
    driver would parse in a statement as long as the list."""
    values = list(values)
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))


def _quoted(*names: str) -> str:
    quote = postgresql.dialect().identifier_preparer.quote_identifier
    return ", ".join(quote(name) for name in names)


def _recordset(table: Table, names: tuple[str, ...]) -> str:
    """The `:rows` JSON as a relation `r` with the table's own column types."""
    dialect = postgresql.dialect()
    columns = ", ".join(
        f"{_quoted(name)} {table.c[name].type.compile(dialect=dialect)}" for name in names
    )
    return f"json_to_recordset(CAST(:rows AS json)) AS r({columns})"


def _json(table: Table, rows: list[dict]) -> str:
    """The rows as one JSON document. orjson (already the inbox's parser)
    writes times itself, with their offset; a time without one would be
    read in the server's zone, so it is refused first, as UTCDateTime does."""
    for name in rows[0]:
        kind = table.c[name].type
        if isinstance(getattr(kind, "impl", kind), DateTime):
            for row in rows:
                value = row[name]
                if value is not None and value.utcoffset() is None:
                    raise ValueError(f"{name}: a time without a time zone: {value!r}")
    return orjson.dumps(rows, default=_json_value).decode()


def _json_value(value: object) -> str:
    """Decimals as exact text."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} as a column value")


def describe_connection_error(exc: DBAPIError, database_url: str) -> str:
    """One line for an operator: what failed on the way to the database and
    what usually fixes it. Drawn from the driver's first line (libpq's and
    SQLite's wording), which names no password."""
    url = make_url(database_url)
    detail = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
    lowered = detail.lower()
    if url.get_backend_name() == "sqlite":
        return (
            f"cannot open the SQLite database {url.database}: {detail} "
            "(does its directory exist, and may this user write there?)"
        )
    where = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"
    if "does not exist" in lowered and "database" in lowered:
        return (
            f"{where}: {detail}; create it (createdb {url.database}), "
            "then run `careloop db upgrade`"
        )
    if "password" in lowered or "role" in lowered or "authentication" in lowered:
        return f"{where} refused the credentials in DATABASE_URL: {detail}"
    if "refused" in lowered or "timeout" in lowered or "could not translate" in lowered:
        return (
            f"cannot reach {where}: {detail} "
            "(is PostgreSQL running there, and are DATABASE_URL's host and port right?)"
        )
    return f"database error on {where}: {detail}"
