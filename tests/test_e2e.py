"""End to end: the real CLI in real processes, over HTTP, on real databases.

Every test starts `python -m app ...` subprocesses (servers on free ports of
127.0.0.1, waited for on /readyz) and stops them in fixture teardown, where
their output is printed: pytest shows it when the test fails. The child
environment is built from scratch for CareLoop's settings, so nothing of the
developer's shell (CARELOOP_*, SHOPIFY_*, DATABASE_URL) leaks into a test.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import stat
import subprocess
import sys
import time

import pytest
import requests
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from dotenv import dotenv_values
from processes import WAIT_TIMEOUT, Process, Processes, child_env, free_port, wait_until
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app import delay_checks, shop_jobs
from app.clock import utcnow
from app.config import DEV_SECRET_FACTORIES, ROOT
from app.demo import EXPECTED_STATES
from app.migrate import alembic_config
from app.models import InboxMessage, Order, OrderEvent, ShopJob
from support import ON_POSTGRESQL, load_fixture, now_header, shopify_headers

pytestmark = pytest.mark.e2e

# Settings.from_env reads <root>/.env in every environment; a developer's own
# .env would change what the "nothing configured" tests start with.
WITHOUT_DOTENV = pytest.mark.skipif(
    (ROOT / ".env").exists(), reason=f"{ROOT / '.env'} would be read by the child processes"
)

COMMAND_TIMEOUT = WAIT_TIMEOUT  # a guard against a hang, not a measure of speed


def careloop(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a CLI command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


def described(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"`{' '.join(result.args[1:])}` exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
    )


def wait_ready(process: Process, base_url: str) -> None:
    def ready() -> bool:
        try:
            if requests.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
        return False

    wait_until(ready, process, f"{base_url}/readyz to answer 200")


def start_server(processes: Processes, command: str, env: dict[str, str], *extra: str) -> str:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = processes.start(
        command, command, "--host", "127.0.0.1", "--port", str(port), *extra, env=env
    )
    wait_ready(server, base_url)
    return base_url


def assert_demo_passed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, described(result)
    for order_id, state in EXPECTED_STATES.items():
        assert f"order {order_id}: {state}  (ok)" in result.stdout, described(result)
    # The delays the rules found, each told to its customer by email (or
    # with the email on its way: told counts from when it leaves).
    for scene, cause in (("delivery exception", "exception"), ("late order", "not_shipped"),
                         ("stalled parcel", "stalled")):  # fmt: skip
        line = next(x for x in result.stdout.splitlines() if scene in x)
        told = f"{cause} (told by email)" in line or f"{cause} (email on its way)" in line
        assert told and "delay/email" in line, described(result)
    # The stalled parcel left long ago: never "not shipped", and no "shipped"
    # about a scan nine days old.
    stalled = next(x for x in result.stdout.splitlines() if "stalled parcel" in x)
    assert "not_shipped" not in stalled and "shipping/" not in stalled, described(result)


def inbox_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(InboxMessage.status, func.count()).group_by(InboxMessage.status)
        ).all()
    return dict(rows)


@WITHOUT_DOTENV
def test_embedded_default_generates_secrets_migrates_and_plays_the_demo(tmp_path, processes):
    instance = tmp_path / "instance"
    newcomer = child_env({"CARELOOP_ENV": "development", "CARELOOP_INSTANCE_DIR": str(instance)})

    base_url = start_server(processes, "run", newcomer)

    secrets_file = instance / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    secrets = {name: value for name, value in dotenv_values(secrets_file).items() if value}
    assert set(secrets) == set(DEV_SECRET_FACTORIES)
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    with contextlib.closing(sqlite3.connect(instance / "careloop.db")) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]

    demo = careloop("demo", "--url", base_url, env=newcomer)
    assert_demo_passed(demo)
    # The support day: two helpdesks' tickets closed, both surveys answered on the page.
    for line in ("200 gorgias", "200 zendesk", "ana@example.com rates the help 5/5",
                 "john@example.com rates the help 2/5"):  # fmt: skip
        assert line in demo.stdout, described(demo)
    # Links the pages make point at this server's own port (no public URL set).
    token = re.search(r"API token (clp_\S+)", demo.stdout).group(1)
    with requests.Session() as browser:
        login = browser.get(f"{base_url}/app/login", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login).group(1)
        browser.post(f"{base_url}/app/login", data={"csrf": csrf, "token": token}, timeout=10)
        page = browser.get(f"{base_url}/app/api-tokens", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        made = browser.post(f"{base_url}/app/sign-in-links", data={"csrf": csrf, "hours": "1"},
                            timeout=10).text  # fmt: skip
    assert f"{base_url}/app/sign-in/" in made, made[-2000:]

    [server] = processes.started
    server.stop()
    output = server.output()
    assert f"{instance / 'secrets.env'}" in output  # it says where the secrets went...
    for where, text in (("server", output), ("demo", demo.stdout + demo.stderr)):
        leaked = sorted(name for name, value in secrets.items() if value in text)
        assert not leaked, f"the {where} output shows the value of {', '.join(leaked)}"
    # The hint works as printed on this port, and nothing shouts at a newcomer.
    assert f"{sys.executable} -m app demo --url {base_url}" in output, output
    assert "development server" not in output and "\x1b[" not in output, output
    assert "production runs `careloop serve`" in output


@ON_POSTGRESQL
def test_production_on_postgresql_gunicorn_and_a_separate_worker(db, env, tmp_path, processes):
    metrics_dir = tmp_path / "prometheus"
    production = child_env(
        env
        | {
            "CARELOOP_ENV": "production",
            "CARELOOP_WITHOUT_PROVIDER": "folder",  # no provider here: files, asked for
            "CARELOOP_WORKER_POLL_SECONDS": "0.2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    )
    metrics_dir.mkdir()

    upgrade = careloop("db", "upgrade", env=production)
    assert upgrade.returncode == 0, described(upgrade)
    assert "latest revision" in upgrade.stdout

    base_url = start_server(processes, "serve", production, "--workers", "2")
    worker = processes.start("worker", "worker", env=production)
    demo = careloop("demo", "--url", base_url, env=production)  # registers the demo shop
    assert_demo_passed(demo)

    assert worker.running(), worker.output()
    [server, _] = processes.started
    assert server.output().count("Booting worker with pid") == 2, server.output()
    # Each gunicorn worker counts what it received; /metrics sums them all.
    exposition = requests.get(f"{base_url}/metrics", timeout=5).text
    received = sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("careloop_webhooks_received_total{")
    )
    answered_200 = [line for line in demo.stdout.splitlines() if line.startswith("  200 ")]
    assert received == len(answered_200) > 0, exposition


@WITHOUT_DOTENV
def test_production_without_a_secret_exits_with_one_line_naming_it(tmp_path):
    production = child_env(
        {
            "CARELOOP_ENV": "production",
            "CARELOOP_INSTANCE_DIR": str(tmp_path / "instance"),
            "DATABASE_URL": "postgresql://careloop@127.0.0.1:9/careloop",
            "CARELOOP_SECRET_KEY": "production-secret-key",
            "CARELOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "SHOPIFY_API_KEY": "production-client-id",
        }
    )

    result = careloop("worker", env=production)

    assert result.returncode != 0, described(result)
    assert len(result.stderr.splitlines()) == 1, described(result)
    assert "SHOPIFY_API_SECRET" in result.stderr, described(result)
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "instance").exists()  # production generates nothing


@ON_POSTGRESQL
def test_inbox_survives_a_worker_killed_mid_way(db, env, shop, processes):
    total = 300
    settings = child_env(env | {"CARELOOP_WORKER_POLL_SECONDS": "0.1"})
    base_url = start_server(processes, "serve", settings, "--workers", "2")

    template = load_fixture("shopify", "orders_create")
    order_ids = [9_100_000_000 + n for n in range(total)]  # beyond 32 bits, as Shopify's are
    with requests.Session() as http:
        for n, order_id in enumerate(order_ids):
            payload = template | {
                "id": order_id,
                "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                "name": f"#{5000 + n}",
                "order_number": 5000 + n,
            }
            body = json.dumps(payload).encode()
            response = http.post(
                f"{base_url}/webhooks/shopify",
                data=body,
                headers=shopify_headers("orders/create", body, triggered_at=now_header()),
                timeout=10,
            )
            assert (response.status_code, response.json()) == (200, {"status": "stored"})
    assert inbox_counts(db) == {"pending": total}

    first = processes.start("worker-1", "worker", env=settings)
    wait_until(
        lambda: inbox_counts(db).get("done", 0) >= total // 6,
        first,
        "the first worker to process some messages",
    )
    first.kill()
    at_kill = inbox_counts(db)
    assert at_kill.get("done", 0) < total, f"inconclusive: all done before SIGKILL ({at_kill})"

    second = processes.start("worker-2", "worker", env=settings)
    wait_until(lambda: "pending" not in inbox_counts(db), second, "the inbox to be drained")

    with Session(db) as session:
        messages = session.exec(select(InboxMessage.status, InboxMessage.attempts)).all()
        orders = session.exec(select(Order.shopify_id).where(Order.shop_id == shop.id)).all()
        events = session.exec(
            select(OrderEvent.order_id, func.count()).group_by(OrderEvent.order_id)
        ).all()
    assert len(messages) == total
    assert {status for status, _ in messages} == {"done"}  # none pending, none dead
    # The killed attempt left no trace: each message was applied by one committed attempt.
    assert {attempts for _, attempts in messages} == {1}
    assert sorted(orders) == order_ids
    assert len(events) == total
    assert len({count for _, count in events}) == 1, "some order got a doubled timeline"


@ON_POSTGRESQL
def test_a_worker_on_a_long_poll_starts_a_job_queued_elsewhere_at_once(db, env, shop, processes):
    """A large sweep asks a free worker for help (a shop job): on PostgreSQL
    that worker hears of it at commit, not at its next poll (here 10 minutes)."""
    settings = child_env(env | {"CARELOOP_WORKER_POLL_SECONDS": "600"})
    worker = processes.start("worker", "worker", env=settings)
    wait_until(lambda: "listening for work queued elsewhere" in worker.output(), worker,
               "the worker to listen")  # fmt: skip
    time.sleep(1)  # its first round is over: it sleeps until woken or polled
    with Session(db) as session:
        assert shop_jobs.enqueue_once(session, shop.id, delay_checks.JOB, "help:e2e", utcnow())
        session.commit()

    def done() -> bool:
        with Session(db) as session:
            return session.exec(select(ShopJob.status).where(ShopJob.slot == "help:e2e")).one() == (
                "done"
            )

    # A guard far below the 10-minute poll, far above a wake-up.
    wait_until(done, worker, "the woken worker to run the job", timeout=60)
