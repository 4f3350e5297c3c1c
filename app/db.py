"""Engine and sessions. Nothing here connects at import time."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
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
