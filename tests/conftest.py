"""Shared fixtures.

`db` is parametrized over SQLite and PostgreSQL, so every test that uses it
(directly or through `app`, `client`, `runner`) runs on both. PostgreSQL is
the local server at 127.0.0.1:5432 (user postgres, trust auth); each test run
gets a database of its own. Without PostgreSQL those tests are skipped with a
message, except under CI (CI=true), where that is a failure.

Each test starts from empty tables (truncated after the previous test), so
tests may use real connections and real server processes.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from browsing import EMBEDDING_ARGS, chromium
from click.testing import CliRunner
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from processes import Processes
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from app import migrate, worker
from app.config import Settings
from app.db import make_engine
from app.factory import create_app
from app.runtime import Runtime, build_runtime
from app.shops import add_shop
from support import (
    OTHER_SHOP_DOMAIN,
    PG_ADMIN_URL,
    POSTMARK_HOOK_PASSWORD,
    SHOP_DOMAIN,
    TEST_SECRET,
    TWILIO_SID,
    TWILIO_TOKEN,
    FrozenClock,
    for_shop,
    load_fixture,
    shopify_headers,
)


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    problem = _postgres_available()
    if problem:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (required under CI)")
        pytest.skip(message)
    name = f"careloop_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql:", "postgresql+psycopg:") + "/" + name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'careloop.db'}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """A migrated database of each kind (the migrations are what we test)."""
    url = request.getfixturevalue(f"{request.param}_url")
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def session_engine(database_url) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(session_engine) -> Iterator[Engine]:
    """The engine; every table is emptied after the test."""
    yield session_engine
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with session_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(db, tmp_path) -> Settings:
    return Settings(
        env="test",
        database_url=db.url.render_as_string(hide_password=False),
        secret_key="test-secret-key",
        encryption_keys=(Fernet.generate_key().decode(),),
        shopify_api_key="test-client-id",
        shopify_api_secret=TEST_SECRET,
        instance_dir=tmp_path / "instance",
        webhook_max_bytes=256 * 1024,
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_from="+15005550006",
        postmark_webhook_password=POSTMARK_HOOK_PASSWORD,
    )


@pytest.fixture
def rt(settings, db, clock) -> Runtime:
    """The runtime on the test database and the frozen clock."""
    return build_runtime(settings, engine=db, clock=clock)


@pytest.fixture
def app(rt) -> Flask:
    return create_app(rt)


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def env(settings, monkeypatch) -> dict[str, str]:
    """The process environment that makes the CLI use the test database."""
    values = {
        "CARELOOP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "CARELOOP_SECRET_KEY": settings.secret_key,
        "CARELOOP_ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "SHOPIFY_API_KEY": settings.shopify_api_key,
        "SHOPIFY_API_SECRET": settings.shopify_api_secret,
        "CARELOOP_INSTANCE_DIR": str(settings.instance_dir),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def runner(env) -> CliRunner:
    return CliRunner()


@dataclass(frozen=True)
class ShopAccess:
    id: int
    domain: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _make_shop(engine: Engine, domain: str, now: datetime) -> ShopAccess:
    with Session(engine) as session:
        shop, token = add_shop(session, domain, now)
        session.commit()
        return ShopAccess(shop.id, shop.domain, token)


@pytest.fixture
def shop(db, clock) -> ShopAccess:
    return _make_shop(db, SHOP_DOMAIN, clock.now())


@pytest.fixture
def other_shop(db, clock) -> ShopAccess:
    return _make_shop(db, OTHER_SHOP_DOMAIN, clock.now())


@pytest.fixture
def deliver(client):
    """POST a Shopify webhook as Shopify would: a fixture name or a payload."""

    def send(topic: str, payload: dict | str | bytes, **options):
        if isinstance(payload, str):
            payload = load_fixture("shopify", payload)
        if isinstance(payload, dict) and "domain" in options:
            payload = for_shop(payload, options["domain"])
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return client.post(
            "/webhooks/shopify", data=body, headers=shopify_headers(topic, body, **options)
        )

    return send


@pytest.fixture
def work(rt):
    """Run the worker until nothing is due; returns how many it processed."""
    return lambda: worker.drain(rt)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the run (Playwright's
    sync API runs one at a time in a thread); a skip without it (a failure
    under CI)."""
    with chromium(EMBEDDING_ARGS) as browser:
        yield browser


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    """Starts processes; stops every one of them after the test, whatever happened.

    Request it after `db` so that the processes are gone before the tables are emptied.
    """
    directory = tmp_path / "logs"
    directory.mkdir()
    started = Processes(directory)
    try:
        yield started
    finally:
        started.stop_all()
        for process in started.started:
            print(f"----- {process.name} (exit {process.popen.returncode}) -----")
            print(process.output())


# Under CI, .ci/run names a file here and prints it when the run fails, so
# that the cause (the failure's tail, its captured output, the logs of the
# servers it started) is the last thing in the CI record.
FAILURE_REPORT = "CARELOOP_FAILURE_REPORT"
TAIL_LINES = 60


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    path = os.environ.get(FAILURE_REPORT)
    if path and report.failed:
        parts = [f"===== {report.nodeid} ({report.when}) =====", _tail(report.longreprtext)]
        for name, content in report.sections:
            parts += [f"----- {name} -----", _tail(content)]
        started = item.funcargs.get("processes")
        for process in started.started if isinstance(started, Processes) else ():
            parts += [f"----- log of {process.name}: {process.log} -----", _tail(process.output())]
        with Path(path).open("a") as report_file:
            report_file.write("\n".join(parts) + "\n\n")
    return report
