"""Engine and sessions. Nothing here connects at import time."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
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
