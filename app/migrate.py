"""Run Alembic migrations from code (`careloop db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from app.config import ROOT


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def not_ready(engine: Engine) -> str | None:
    """Why the database cannot be used as it is, or None: a command that
    works on the server's database (the demo) says so instead of creating
    an empty one (SQLite makes the file on connecting) and failing on its
    first table."""
    if engine.url.get_backend_name() == "sqlite":
        path = engine.url.database
        if path and path != ":memory:" and not Path(path).exists():
            return f"there is no database at {path}"
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    if current is None:
        return f"the database at {engine.url.render_as_string(hide_password=True)} is empty"
    if current != head:
        return f"the database is at revision {current}, not {head} (careloop db upgrade)"
    return None
