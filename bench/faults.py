"""Faults under a webhook stream, on real processes: a worker killed with
SIGKILL mid-stream, and PostgreSQL stopped for a while. The long version of
the crash tests in tests/test_e2e.py and tests/test_outbox_crash.py.

    .venv/bin/python bench/faults.py [--webhooks 600] [--outage-seconds 10] [--no-outage]

It starts `careloop serve` (gunicorn, 1 worker) and `careloop worker` on a
scratch PostgreSQL database, sends signed `orders/create` webhooks at a steady
pace, as Shopify does, re-sending any delivery not answered 200 (Shopify
retries), then, a third of the way in, SIGKILLs the worker and starts
another, and two thirds of the way in stops PostgreSQL (`pg_ctlcluster`) for
`--outage-seconds`. THE OUTAGE STOPS THIS MACHINE'S POSTGRESQL: run it alone,
never beside the test suite. At the end it waits for the inbox to drain and
prints what was held (answered 200 and stored), lost (answered 200 and not
stored: must be 0), duplicated (an order applied twice: must be 0), and how
the sender was answered during the faults. It exits 1 if anything was lost
or duplicated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

# Imported while bench/ is still first on sys.path, where Python put it for this script.
from _common import create_databases, drop_databases, sa_url

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from processes import Processes, child_env, free_port  # noqa: E402
from sqlalchemy import func  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from app import migrate  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.models import InboxMessage, Order, OrderEvent  # noqa: E402
from app.shops import add_shop  # noqa: E402
from support import SHOP_DOMAIN, TEST_SECRET, load_fixture, now_header, shopify_headers  # noqa: E402

RESEND_AFTER = 1.0  # seconds before a delivery not answered 200 is sent again


def pg_cluster(action: str) -> None:
    """Start or stop the machine's PostgreSQL cluster, as .ci/run starts it."""
    version = subprocess.run(
        ["ls", "/etc/postgresql"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True
    )


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


class Sender:
    """Sends each webhook until it is answered 200, at a steady pace."""

    def __init__(self, base_url: str, total: int, interval: float):
        self.base_url, self.total, self.interval = base_url, total, interval
        self.answers: Counter[str] = Counter()
        self.accepted: set[str] = set()  # webhook ids answered 200
        self.sent = 0

    def run(self) -> None:
        template = load_fixture("shopify", "orders_create")
        pending: list[tuple[float, str, bytes]] = []
        with requests.Session() as http:
            for n in range(self.total):
                order_id = 9_200_000_000 + n
                body = json.dumps(template | {
                    "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                    "name": f"#{7000 + n}", "order_number": 7000 + n,
                }).encode()  # fmt: skip
                pending.append((0.0, str(uuid.uuid4()), body))
                self.sent = n + 1
                pending = self._send_due(http, pending)
                time.sleep(self.interval)
            while pending:
                pending = self._send_due(http, pending)
                time.sleep(0.2)

    def _send_due(self, http, pending):
        later = []
        for due, webhook_id, body in pending:
            if due > time.monotonic():
                later.append((due, webhook_id, body))
                continue
            headers = shopify_headers(
                "orders/create", body, webhook_id=webhook_id, triggered_at=now_header()
            )
            try:
                response = http.post(
                    f"{self.base_url}/webhooks/shopify", data=body, headers=headers, timeout=10
                )
                outcome = str(response.status_code)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            self.answers[outcome] += 1
            if outcome == "200":
                self.accepted.add(webhook_id)
            else:
                later.append((time.monotonic() + RESEND_AFTER, webhook_id, body))
        return later


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=600)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between webhooks")
    parser.add_argument("--outage-seconds", type=float, default=10.0)
    parser.add_argument("--no-outage", action="store_true", help="only the SIGKILL")
    args = parser.parse_args()

    database = f"careloop_faults_{uuid.uuid4().hex[:8]}"
    create_databases(database)
    url = sa_url(database)
    instance = Path(tempfile.mkdtemp(prefix="careloop-faults-"))
    processes = Processes(instance)
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session:
            add_shop(session, SHOP_DOMAIN, datetime.now(UTC))
            session.commit()
        port = free_port()
        env = child_env({
            "CARELOOP_ENV": "production", "CARELOOP_WITHOUT_PROVIDER": "hold",
            "DATABASE_URL": url, "CARELOOP_SECRET_KEY": "faults-" + uuid.uuid4().hex,
            "CARELOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "SHOPIFY_API_KEY": "faults", "SHOPIFY_API_SECRET": TEST_SECRET,
            "CARELOOP_INSTANCE_DIR": str(instance), "CARELOOP_WORKER_POLL_SECONDS": "0.2",
        })  # fmt: skip
        processes.start("serve", "serve", "--host", "127.0.0.1", "--port", str(port),
                        "--workers", "1", env=env)  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(base_url), "the server")
        worker = processes.start("worker-1", "worker", env=env)

        sender = Sender(base_url, args.webhooks, args.interval)
        thread = threading.Thread(target=sender.run)
        started = time.monotonic()
        thread.start()
        wait_for(lambda: sender.sent >= args.webhooks // 3, "a third of the stream")
        worker.kill()
        print(f"{time.monotonic() - started:5.1f} s  worker SIGKILLed at webhook {sender.sent}")
        time.sleep(2)
        processes.start("worker-2", "worker", env=env)
        if not args.no_outage:
            wait_for(lambda: sender.sent >= 2 * args.webhooks // 3, "two thirds of the stream")
            print(f"{time.monotonic() - started:5.1f} s  PostgreSQL stopped at webhook "
                  f"{sender.sent}")  # fmt: skip
            pg_cluster("stop")
            time.sleep(args.outage_seconds)
            pg_cluster("start")
            print(f"{time.monotonic() - started:5.1f} s  PostgreSQL started again")
        thread.join()
        engine.dispose()

        def drained() -> bool:
            with Session(engine) as session:
                return not session.exec(
                    select(func.count()).where(InboxMessage.status == "pending")
                ).one()

        wait_for(drained, "the inbox to drain", timeout=300)
        with Session(engine) as session:
            stored = set(session.exec(select(InboxMessage.delivery_id)).all())
            statuses = Counter(session.exec(select(InboxMessage.status)).all())
            orders = session.exec(select(func.count()).select_from(Order)).one()
            per_order = session.exec(
                select(OrderEvent.order_id, func.count()).group_by(OrderEvent.order_id)
            ).all()
        lost = sender.accepted - stored
        doubled = [order for order, count in per_order if count > 1]
        print(f"\n{args.webhooks} webhooks in {time.monotonic() - started:.1f} s; answers: "
              + ", ".join(f"{k} x{v}" for k, v in sorted(sender.answers.items())))  # fmt: skip
        print(f"held:       {len(sender.accepted & stored)} answered 200 and stored")
        print(f"lost:       {len(lost)} answered 200 and not stored")
        print(f"inbox:      {dict(statuses)}; orders: {orders}")
        print(f"duplicated: {len(doubled)} orders applied more than once")
        return 1 if lost or doubled or orders != args.webhooks else 0
    finally:
        processes.stop_all()
        drop_databases(database)


def _ready(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    sys.exit(main())
