"""The migrations build exactly the schema the models describe, on each
backend, and can be undone and redone on a fresh database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app import migrate
from app.db import make_engine
from support import PG_ADMIN_URL

TABLES = {t.name for t in SQLModel.metadata.sorted_tables}


def differences(engine: Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, SQLModel.metadata)


def head(url: str) -> str:
    return ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def table_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names()) - {"alembic_version"}


def test_migrated_schema_matches_the_models(db):
    assert current_revision(db) == head(db.url.render_as_string(hide_password=False))
    assert differences(db) == []


def test_every_model_table_exists_after_migrating(db):
    assert table_names(db) == TABLES


@pytest.fixture
def scratch_url(db, tmp_path) -> Iterator[str]:
    """A fresh, empty database of the same kind as `db`."""
    if db.dialect.name == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"careloop_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql:", "postgresql+psycopg:") + (
            f"/{name}"
        )
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_downgrade_to_base_then_upgrade_to_head_on_a_fresh_database(scratch_url):
    config = migrate.alembic_config(scratch_url)
    engine = make_engine(scratch_url)
    try:
        migrate.upgrade(scratch_url)
        assert table_names(engine) == TABLES

        command.downgrade(config, "base")
        assert current_revision(engine) is None
        assert table_names(engine) == set()

        migrate.upgrade(scratch_url)
        assert current_revision(engine) == head(scratch_url)
        assert table_names(engine) == TABLES
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_upgrading_an_up_to_date_database_changes_nothing(scratch_url):
    engine = make_engine(scratch_url)
    try:
        migrate.upgrade(scratch_url)
        migrate.upgrade(scratch_url)
        assert current_revision(engine) == head(scratch_url)
        assert differences(engine) == []
    finally:
        engine.dispose()


def bare(sql: str) -> str:
    return "".join(ch for ch in sql if ch not in "() \n")


@pytest.mark.parametrize("period", ["week", "month", "quarter"])
def test_postgresql_has_statistics_on_the_matrix_periods(db, period):
    """Migration 0020's statistics help only while their expressions are the
    ones the retention queries group by."""
    from sqlalchemy import text

    from app.retention import _trunc

    if db.dialect.name != "postgresql":
        pytest.skip("statistics on expressions are PostgreSQL's")
    with db.connect() as conn:
        statistics = conn.execute(
            text("SELECT pg_get_statisticsobjdef(oid) FROM pg_statistic_ext WHERE stxname = :n"),
            {"n": f"customer_activity_{period}s"},
        ).scalar_one()
        for column in ("first_day", "day"):
            view = f"v_{period}_{column}"
            conn.execute(
                text(
                    f"CREATE TEMPORARY VIEW {view} AS"
                    f" SELECT {_trunc('postgresql', period, column)} AS p FROM customer_activity"
                )
            )
            shown = conn.execute(text(f"SELECT pg_get_viewdef('{view}')")).scalar_one()
            expression = shown.split("SELECT", 1)[1].rsplit(" AS p", 1)[0]
            # The two deparsings differ in parentheses and qualification only.
            assert bare(expression.replace("customer_activity.", "")) in bare(statistics)


def test_0022_mends_rules_whose_template_kind_is_not_their_triggers(scratch_url):
    engine = make_engine(scratch_url)
    try:
        migrate.upgrade(scratch_url, "0021")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO shops (domain, name, timezone, locale, currency, installed_at)"
                " VALUES ('m.myshopify.com', 'm', 'UTC', 'en', 'USD', '2026-12-01 00:00:00')"
            )
            for trigger, kind in (("shipped", "survey"), ("delay_stalled", "delay")):
                conn.exec_driver_sql(
                    "INSERT INTO rules (shop_id, name, trigger, enabled, template_kind, channels,"
                    " category, wait_minutes, quiet_hours, countries, tags, shipping_methods,"
                    " created_at, updated_at) VALUES (1, 'r', %s, true, %s, 'email',"
                    " 'transactional', 0, true, '', '', '', '2026-12-01 00:00:00',"
                    " '2026-12-01 00:00:00')".replace(
                        "%s", "?" if "sqlite" in scratch_url else "%s"
                    ),
                    (trigger, kind),
                )
        migrate.upgrade(scratch_url)
        with engine.connect() as conn:
            kinds = conn.exec_driver_sql("SELECT trigger, template_kind FROM rules").all()
        assert sorted(kinds) == [("delay_stalled", "delay"), ("shipped", "shipping")]
    finally:
        engine.dispose()
