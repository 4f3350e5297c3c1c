"""Notification dispatch benchmark: the outbox worker against a floor, over SMTP on loopback.

    .venv/bin/python bench/notifications.py [--notifications 2000] [--rounds 2]
                                            [--batch-size 50] [--sink-delay-ms 0]
                                            [--profile] [--analyze]

Creates a scratch PostgreSQL database on the local server (migrated, one shop, one
customer per notification), starts an SMTP sink (aiosmtpd, accepting every message at
once) in a process of its own, and measures messages/s for:

  (a) FLOOR: one process, one smtplib connection, the same number of messages, each the
      same pre-rendered shipping email (rendered and written as bytes once, `build_mime`);
  (b) one `python -m app worker` process;
  (c) two `python -m app worker` processes at once.

For (b) and (c) the N notifications are queued through `notifications.outbox.enqueue`
but held (due tomorrow) while the workers start; the clock starts when they are made
due, and stops when the database says all N are `sent` (polled every 20 ms). Prints a
table with the goals (one worker / floor >= 0.7; two workers / one worker >= 1.6),
printed, never asserted. `--profile` runs (b) once more under cProfile and prints where
the worker's time goes; `--analyze` runs the dispatch loop in this process with every
SQL statement and commit counted, and the time split by step. Drops the database at
the end. Run by hand only: nothing here is a test. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import pstats
import secrets
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import (
    cpu_model,
    create_databases,
    drop_databases,
    machine_busy_seconds,
    process_cpu_seconds,
    sa_url,
    stop_process,
)

ROOT = Path(__file__).resolve().parent.parent
# The project before bench/ (this script's folder, first on sys.path), so that
# `notifications` is the package, not this script; tests/ for `processes`.
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

HOST = "127.0.0.1"
SHOP_DOMAIN = "bench-store.myshopify.com"
GOAL_ONE_VS_FLOOR = 0.7
GOAL_TWO_VS_ONE = 1.6
POLL_SECONDS = 0.02
PHASE_TIMEOUT = 600.0


# --------------------------------------------------------------------------- the sink


class _Accept:
    """aiosmtpd handler: accepts every message, keeps nothing. `delay` is how
    long it takes to answer the end of DATA, as a relay that queues the
    message on disk first (0: at once)."""

    def __init__(self, delay: float) -> None:
        self.count = 0
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 OK"


def run_sink(port: int, delay: float) -> None:
    """`--sink PORT`: serve SMTP on loopback until SIGTERM."""
    from aiosmtpd.controller import Controller

    handler = _Accept(delay)
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("sink ready", flush=True)
    loop.run_until_complete(stop.wait())
    controller.stop()
    print(f"sink accepted {handler.count} message(s)", flush=True)


def start_sink(log_dir: Path, delay_ms: float) -> tuple[subprocess.Popen, int]:
    from processes import free_port  # not at the top: the sink process needs none of it

    port = free_port()
    log = (log_dir / "sink.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(port), "--sink-delay-ms", str(delay_ms)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    try:
        wait_for(lambda: "sink ready" in (log_dir / "sink.log").read_text(), process, "the sink")
    except BaseException:
        stop_process(process, timeout=30)
        raise
    return process, port


# --------------------------------------------------------------------------- database


def context_for(n: int) -> dict:
    from notifications.rendering import sample_context

    context = sample_context("shipping") | {
        "order_name": f"#{5000 + n}",
        "tracking_number": f"1Z999AA1{n:010d}",
    }
    context["tracking_url"] = f"https://www.ups.com/track?tracknum={context['tracking_number']}"
    return context


def setup_shop(engine, total: int) -> int:
    """The shop and one customer per notification (so the frequency cap is checked
    for each message, as it is for real ones, and never reached)."""
    from sqlmodel import Session

    from app.models import Customer
    from app.shops import add_shop

    with Session(engine) as session:
        shop, _ = add_shop(session, SHOP_DOMAIN, datetime.now(UTC), name="Northwind Outfitters")
        session.add_all(
            Customer(
                shop_id=shop.id,
                shopify_id=7_001_000 + n,
                email=f"customer+{n}@example.com",
                first_name="Ana",
                email_consent="subscribed",
            )
            for n in range(total)
        )
        session.commit()
        return shop.id


def queue_held(engine, shop_id: int, total: int) -> None:
    """Empty the outbox, then queue `total` shipping emails, due tomorrow."""
    from sqlalchemy import text
    from sqlmodel import Session, select

    from app.models import Customer
    from notifications import outbox, policy

    now = datetime.now(UTC)
    with Session(engine) as session:
        session.exec(text("TRUNCATE notification_events, notifications RESTART IDENTITY"))
        customers = session.exec(
            select(Customer.id, Customer.email).where(Customer.shop_id == shop_id)
            .order_by(Customer.id)
        ).all()  # fmt: skip
        for n, (customer_id, address) in enumerate(customers[:total]):
            outbox.enqueue(
                session,
                shop_id=shop_id,
                key=f"customer:{7_001_000 + n}:shipping:order:{5_001_000 + n}",
                kind="shipping",
                category=policy.TRANSACTIONAL,
                channel="email",
                recipient=address,
                locale="en",
                context=context_for(n),
                now=now,
                customer_id=customer_id,
            )
        session.exec(
            text("UPDATE notifications SET next_attempt_at = :later"),
            params={"later": now + timedelta(days=1)},
        )
        session.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE notifications"))
        conn.execute(text("VACUUM ANALYZE notification_events"))


def release(engine) -> float:
    """Make every held notification due now; returns the monotonic start time."""
    from sqlalchemy import text

    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text("UPDATE notifications SET next_attempt_at = now() - interval '1 second'"))
    return started


def wait_all_sent(engine, total: int, processes: list[subprocess.Popen]) -> float:
    """Poll until `total` rows are `sent`; returns the monotonic end time."""
    from sqlalchemy import text

    deadline = time.monotonic() + PHASE_TIMEOUT
    query = text(
        "SELECT count(*) FILTER (WHERE status = 'sent'), "
        "count(*) FILTER (WHERE status NOT IN ('queued', 'sending', 'sent')) FROM notifications"
    )
    with engine.connect() as conn:
        while True:
            sent, other = conn.execute(query).one()
            conn.commit()
            if sent == total:
                return time.monotonic()
            if other:
                rows = conn.execute(
                    text("SELECT status, status_detail, count(*) FROM notifications "
                         "GROUP BY 1, 2")
                ).all()  # fmt: skip
                raise RuntimeError(f"notifications not sent: {rows}")
            if any(p.poll() is not None for p in processes):
                raise RuntimeError("a worker exited during the run")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sent}/{total} sent after {PHASE_TIMEOUT:.0f}s")
            time.sleep(POLL_SECONDS)


# --------------------------------------------------------------------------- processes


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}) before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after 60s")
        time.sleep(0.05)


def worker_env(url: str, smtp_port: int, args: argparse.Namespace) -> dict[str, str]:
    """This environment without CareLoop's settings (`child_env`: none of the caller's
    CARELOOP_*, SMTP_*, DATABASE_URL, ...), plus the worker's."""
    from cryptography.fernet import Fernet
    from processes import child_env

    return child_env(
        {
            "CARELOOP_ENV": "test",
            "CARELOOP_INSTANCE_DIR": str(Path(tempfile.gettempdir()) / "careloop-bench-instance"),
            "DATABASE_URL": url,
            "CARELOOP_SECRET_KEY": secrets.token_urlsafe(32),
            "CARELOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "SHOPIFY_API_KEY": "bench-client-id",
            "SHOPIFY_API_SECRET": secrets.token_urlsafe(32),
            "SMTP_HOST": HOST,
            "SMTP_PORT": str(smtp_port),
            "SMTP_SECURITY": "none",
            "CARELOOP_OUTBOX_BATCH_SIZE": str(args.batch_size),
            # The worker polls once a second by default; a shorter poll keeps the start
            # of the clock from waiting on it (it only matters when nothing is due).
            "CARELOOP_WORKER_POLL_SECONDS": "0.1",
        }
    )


def start_workers(
    count: int, env: dict[str, str], log_dir: Path, tag: str, profile: Path | None = None
) -> list[subprocess.Popen]:
    started = []
    for index in range(count):
        log_path = log_dir / f"{tag}-{index}.log"
        command = [sys.executable]
        if profile is not None:
            command += ["-m", "cProfile", "-o", str(profile)]
        command += ["-m", "app", "worker"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        started.append(process)
        wait_for(
            lambda path=log_path: "worker started" in path.read_text(errors="replace"),
            process,
            f"worker {tag}-{index}",
        )
    return started


# --------------------------------------------------------------------------- phases


def floor(total: int, smtp_port: int) -> float:
    """(a): seconds to send `total` pre-rendered messages over one connection."""
    from notifications import rendering
    from notifications.email import build_mime, message_id_for
    from notifications.messages import EmailMessage

    context = context_for(0) | {"shop_name": "Northwind Outfitters"}
    rendered = rendering.render("shipping", "email", "en", context)
    sender = "notifications@careloop.invalid"
    message = EmailMessage(
        message_id=message_id_for("0:0", "bench", "careloop.invalid"),
        sender=sender,
        sender_name="Northwind Outfitters",
        to="customer+0@example.com",
        subject=rendered.subject or "",
        html=rendered.html or "",
        text=rendered.text,
    )
    data = build_mime(message)
    started = time.monotonic()
    conn = smtplib.SMTP(HOST, smtp_port, timeout=10)
    try:
        conn.ehlo()
        for n in range(total):
            conn.sendmail(sender, [f"customer+{n}@example.com"], data)
    finally:
        conn.quit()
    return time.monotonic() - started


def wait_idle(limit: float = 180.0, threshold: float = 0.3) -> float:
    """Wait (at most `limit` s) until other work on the machine uses less than
    `threshold` cores over 2 s; returns the load seen last. Other people's test
    runs on a shared 2-core machine would otherwise decide the figures."""
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds()
        time.sleep(2.0)
        load = (machine_busy_seconds() - before) / 2.0
        if load < threshold or time.monotonic() > deadline:
            return load


def cpu_seconds(pids: dict[str, list[int]], database: str) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes, by the
    PostgreSQL backends serving `database`, and by the whole machine."""
    used = {
        group: sum(process_cpu_seconds(pid) for pid in members) for group, members in pids.items()
    }
    used["postgres"] = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if database in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    used["postgres"] += process_cpu_seconds(int(entry.name))
            except OSError:
                pass
    used["machine"] = machine_busy_seconds()
    return used


def worker_phase(
    count: int,
    engine,
    shop_id: int,
    total: int,
    env: dict[str, str],
    log_dir: Path,
    tag: str,
    sink: subprocess.Popen,
    profile: Path | None = None,
) -> float:
    """(b) and (c): seconds from release until the database says all are sent.
    Prints where the CPU went during that time."""
    queue_held(engine, shop_id, total)
    database = engine.url.database
    processes = start_workers(count, env, log_dir, tag, profile)
    pids = {
        "workers": [p.pid for p in processes],
        "sink": [sink.pid],
        "bench poller": [os.getpid()],
    }
    try:
        wait_idle()
        before = cpu_seconds(pids, database)
        started = release(engine)
        ended = wait_all_sent(engine, total, processes)
        after = cpu_seconds(pids, database)
    finally:
        for process in processes:
            stop_process(process, timeout=30)
    wall = ended - started
    used = {group: (after[group] - before[group]) / wall for group in after}
    used["others"] = used.pop("machine") - sum(used.values())
    print(f"  {tag}: {total / wall:.0f} msg/s; CPU in cores: " + ", ".join(
        f"{group} {share:.2f}" for group, share in used.items()
    ) + f" (of {os.cpu_count()}); worker CPU {after['workers'] - before['workers']:.2f}s "
        f"= {(after['workers'] - before['workers']) / total * 1000:.2f} ms/message")  # fmt: skip
    return wall


def analyze(engine, shop_id: int, total: int, smtp_port: int, batch_size: int) -> None:
    """The dispatch loop in this process: statements, commits and time per step."""
    import re

    from sqlalchemy import event

    from app import rules
    from app.clock import Clock
    from app.config import Settings
    from app.runtime import Runtime
    from notifications import dispatch, smtp
    from notifications.transports import from_settings

    queue_held(engine, shop_id, total)
    release(engine)
    settings = Settings(
        env="test",
        database_url=engine.url.render_as_string(hide_password=False),
        secret_key="bench",
        encryption_keys=(),
        shopify_api_key="bench",
        shopify_api_secret="bench",
        instance_dir=Path(tempfile.gettempdir()) / "careloop-bench-instance",
        smtp_host=HOST,
        smtp_port=smtp_port,
        smtp_security="none",
        outbox_batch_size=batch_size,
    )
    rt = Runtime(settings=settings, engine=engine, clock=Clock(), secrets=None, oauth=None)  # type: ignore[arg-type]
    # As the worker builds them: SMTP_CONNECTIONS (Settings.smtp_connections) connections.
    transports = from_settings(settings)
    statements: dict[str, int] = {}
    commits = [0]
    step = ["other"]
    timings: dict[str, float] = {}
    in_sql = [0.0, 0.0]  # seconds waiting on the database, start of the current statement

    def shape(statement: str) -> str:
        words = re.sub(r"\s+", " ", statement).strip()
        verb = words.split(" ", 1)[0].upper()
        table = re.search(r"(?:FROM|INTO|UPDATE) (\w+)", words)
        where = re.search(r"WHERE (.{0,60})", words)
        detail = f" {table.group(1)}" if table else ""
        if where:
            detail += " WHERE " + re.sub(r"%\(\w+\)s::\w+|%\(\w+\)s", "?", where.group(1))
        return f"{verb}{detail}"[:90]

    def before(conn, cursor, statement, parameters, context, executemany):
        key = f"[{step[0]}] {shape(statement)}"
        statements[key] = statements.get(key, 0) + 1
        in_sql[1] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        in_sql[0] += time.perf_counter() - in_sql[1]

    def count_commit(conn):
        commits[0] += 1

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "commit", count_commit)

    def timed(name: str, function):
        def wrapper(*args, **kwargs):
            previous, step[0] = step[0], name
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
                step[0] = previous

        return wrapper

    originals = (
        dispatch.outbox.claim, dispatch._prepare, dispatch._render, dispatch.rendering.render,
        smtp.build_mime,
    )  # fmt: skip
    dispatch.outbox.claim = timed("claim", dispatch.outbox.claim)
    dispatch._prepare = timed("_prepare", dispatch._prepare)
    dispatch._render = timed("_prepare > _render", dispatch._render)
    dispatch.rendering.render = timed("_prepare > _render > templates", dispatch.rendering.render)
    smtp.build_mime = timed("send > build_mime", smtp.build_mime)
    transports.email.send_batch = timed("send", transports.email.send_batch)
    started = time.perf_counter()
    try:
        sent = 0
        while claimed := timed("dispatch_batch", dispatch.dispatch_batch)(
            rt, transports, rules.no_longer_true
        ):
            sent += claimed
    finally:
        (
            dispatch.outbox.claim, dispatch._prepare, dispatch._render,
            dispatch.rendering.render, smtp.build_mime,
        ) = originals  # fmt: skip
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        event.remove(engine, "commit", count_commit)
    elapsed = time.perf_counter() - started
    print(f"\nIn-process dispatch of {sent} notifications ({sent / elapsed:.0f} msg/s, "
          f"batch {batch_size}, {settings.smtp_connections} SMTP connections; "
          "timers and SQL hooks add a little):")  # fmt: skip
    print(f"  {sum(statements.values()) / sent:.1f} SQL statements (round trips) and "
          f"{commits[0] / sent:.2f} commits per message; "
          f"{in_sql[0] / sent * 1000:.3f} ms/message waiting in cursor.execute")  # fmt: skip
    for name, count in sorted(statements.items(), key=lambda item: -item[1]):
        if count / sent >= 0.05:
            print(f"    {count / sent:5.2f}  {name}")
    print("  time per message by step (ms, nested steps are included in their parent):")
    for name, seconds in sorted(timings.items()):
        print(f"    {name:<32} {seconds / sent * 1000:6.3f}")


def show_profile(path: Path, total: int) -> None:
    stats = pstats.Stats(str(path))
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("cumulative").print_stats(40)
    print(f"\ncProfile of one worker sending {total} notifications (cumulative, top 40):")
    print(out.getvalue())
    interesting = {
        "dispatch_batch": "dispatch_batch",
        "claim": "outbox.claim",
        "_prepare": "_prepare",
        "_render": "_render",
        "render": "rendering.render",
        "inline_css": "inline_css",
        "send_batch": "SmtpProvider.send_batch",
        "build_mime": "build_mime",
        "sendmail": "smtplib sendmail",
        "commit": "Session.commit",
        "execute": "psycopg execute",
        "message_id_for": "message_id_for",
        "cap_until": "policy.cap_until",
        "opted_out": "outbox.opted_out",
        "transition": "outbox.transition",
    }
    rows = {}
    for (filename, _, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if name not in interesting:
            continue
        if name == "execute" and "psycopg" not in filename:
            continue
        if name == "commit" and "orm/session" not in filename:
            continue
        if name == "render" and "rendering" not in filename:
            continue
        if name == "claim" and "outbox" not in filename:
            continue
        label = interesting[name]
        old = rows.get(label, (0, 0.0))
        rows[label] = (old[0] + calls, old[1] + cumulative)
    print("Per message (cumulative time inside the worker process):")
    for label, (calls, cumulative) in sorted(rows.items(), key=lambda item: -item[1][1]):
        print(f"  {label:<26} {calls / total:6.2f} calls  {cumulative / total * 1000:7.3f} ms")


# --------------------------------------------------------------------------- main


def machine() -> str:
    return f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=50, help="CARELOOP_OUTBOX_BATCH_SIZE")
    parser.add_argument("--profile", action="store_true", help="cProfile one worker run")
    parser.add_argument("--analyze", action="store_true", help="count statements per message")
    parser.add_argument(
        "--sink-delay-ms", type=float, default=0.0,
        help="the sink answers DATA after this long, as a real relay would (default 0)",
    )  # fmt: skip
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink, args.sink_delay_ms / 1000)
        return

    from app import migrate
    from app.db import make_engine

    total = args.notifications
    name = f"careloop_bench_notifications_{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="careloop-bench-notifications-"))
    print(f"machine: {machine()}")
    print(f"{total} notifications, batch size {args.batch_size}, {args.rounds} round(s), "
          f"sink answers DATA after {args.sink_delay_ms:g} ms; logs in {log_dir}")  # fmt: skip
    print("the SMTP sink (one aiosmtpd process) and PostgreSQL share these cores with "
          "the workers and this process.")  # fmt: skip
    results: dict[str, list[float]] = {"floor": [], "one worker": [], "two workers": []}
    created, engine, sink = False, None, None
    try:
        create_databases(name)
        created = True
        url = sa_url(name)
        migrate.upgrade(url)
        engine = make_engine(url)
        sink, smtp_port = start_sink(log_dir, args.sink_delay_ms)
        with engine.connect() as conn:
            from sqlalchemy import text

            print(f"database: {conn.execute(text('SELECT version()')).scalar().split(',')[0]}")
        shop_id = setup_shop(engine, total)
        env = worker_env(url, smtp_port, args)
        for round_number in range(1, args.rounds + 1):
            load = wait_idle()
            seconds = floor(total, smtp_port)
            print(f"  r{round_number}-floor: {total / seconds:.0f} msg/s "
                  f"(other load before: {load:.2f} cores)")  # fmt: skip
            results["floor"].append(total / seconds)
            seconds = worker_phase(
                1, engine, shop_id, total, env, log_dir, f"r{round_number}-one", sink
            )
            results["one worker"].append(total / seconds)
            seconds = worker_phase(
                2, engine, shop_id, total, env, log_dir, f"r{round_number}-two", sink
            )
            results["two workers"].append(total / seconds)
            print(f"round {round_number}: " + ", ".join(
                f"{label} {rates[-1]:.0f} msg/s" for label, rates in results.items()
            ))  # fmt: skip
        report(results)
        if args.analyze:
            analyze(engine, shop_id, total, smtp_port, args.batch_size)
        if args.profile:
            profile = log_dir / "worker.prof"
            worker_phase(1, engine, shop_id, total, env, log_dir, "profile", sink, profile)
            show_profile(profile, total)
    finally:
        if sink is not None:
            stop_process(sink, timeout=30)
        if engine is not None:
            engine.dispose()
        if created:
            drop_databases(name)
    print(f"dropped {name}; the sink said: "
          f"{(log_dir / 'sink.log').read_text().strip().splitlines()[-1]}")  # fmt: skip


def report(results: dict[str, list[float]]) -> None:
    median = {label: statistics.median(rates) for label, rates in results.items()}
    print("\n| run | msg/s (median) | rounds |")
    print("| --- | ---: | --- |")
    for label, rates in results.items():
        print(f"| {label} | {median[label]:.0f} | {', '.join(f'{r:.0f}' for r in rates)} |")
    one_vs_floor = median["one worker"] / median["floor"]
    two_vs_one = median["two workers"] / median["one worker"]
    print()
    print(f"one worker / floor   = {one_vs_floor:.2f}  (goal >= {GOAL_ONE_VS_FLOOR}: "
          f"{'met' if one_vs_floor >= GOAL_ONE_VS_FLOOR else 'NOT met'})")  # fmt: skip
    print(f"two workers / one    = {two_vs_one:.2f}  (goal >= {GOAL_TWO_VS_ONE}: "
          f"{'met' if two_vs_one >= GOAL_TWO_VS_ONE else 'NOT met'})")  # fmt: skip
    print(
        f"(all on {os.cpu_count()} cores: the SMTP sink, PostgreSQL and this poller share "
        "them with the workers; see the CPU lines above for who used what)"
    )


if __name__ == "__main__":
    main()
