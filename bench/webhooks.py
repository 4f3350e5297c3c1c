"""Webhook receiving benchmark: the real service against a floor, on loopback.

    .venv/bin/python bench/webhooks.py [--requests N] [--concurrency 64] [--workers W]

Creates two fresh PostgreSQL databases on the local server (the service's, migrated,
with one shop; and the floor's one table), starts the service (`app.wsgi`) and the
floor (`bench/floor_app.py`) under gunicorn with the same settings, warms both up,
then sends N signed `orders/create` webhooks to each from 64 concurrent keep-alive
senders, in alternating rounds, and prints throughput, p50/p99 latency, the
service/floor ratio and the goal check. Then it checks exactly-once delivery into the
inbox (including a burst of racing redeliveries), stops both servers and drops both
databases. Run by hand only: nothing here is a test, and the goal is printed, never
asserted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

# Imported while bench/ is still first on sys.path, where Python put it for this script.
from _common import (
    cpu_model,
    create_databases,
    drop_databases,
    machine_busy_seconds,
    pg_address,
    proc_stat,
    sa_url,
    stop_process,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# Python puts this script's folder first on sys.path; other scripts in bench/ could then
# shadow the project's packages (bench/notifications.py would hide `notifications`).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from processes import free_port  # noqa: E402

from support import SHOP_DOMAIN, load_fixture, now_header, shopify_headers  # noqa: E402

HOST = "127.0.0.1"
TOPIC = "orders/create"
GOAL_RATIO = 0.8
GOAL_P99_MS = 100.0


# --------------------------------------------------------------------------- setup


def prepare_service_db(url: str) -> None:
    from sqlmodel import Session

    from app import migrate
    from app.db import make_engine
    from app.shops import add_shop

    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            add_shop(session, SHOP_DOMAIN, datetime.now(UTC), name="Bench Store")
            session.commit()
    finally:
        engine.dispose()


def prepare_floor_db(url: str) -> None:
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE floor_inbox (id bigserial PRIMARY KEY, body text NOT NULL)")


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_server(
    name: str,
    app: str,
    env: dict[str, str],
    args: argparse.Namespace,
    log_dir: Path,
) -> Server:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--log-level",
        "warning",
        "--config",
        str(ROOT / "gunicorn.conf.py"),  # what `careloop serve` and the image use
    ]
    if args.access_log:
        command += ["--access-logfile", "-"]  # as `careloop serve` does
    command.append(app)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": _pythonpath()},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return Server(name, port, process, log_path)


def _pythonpath() -> str:
    """bench/ after the project root (gunicorn puts its working directory, the root,
    first): floor_app (and any --service-app module) import from here, while our own
    packages are never shadowed by a script in bench/ (bench/notifications.py)."""
    return os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p)


def wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{HOST}:{server.port}/readyz"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}")


# --------------------------------------------------------------------------- requests


@dataclass
class Prepared:
    """One pre-built, pre-signed HTTP request."""

    delivery_id: str
    raw: bytes


def build_requests(secret: str, port: int, count: int, first_order_id: int) -> list[Prepared]:
    """`count` distinct orders/create deliveries, signed, as raw HTTP/1.1 bytes."""
    template = load_fixture("shopify", "orders_create")
    prepared = []
    for i in range(count):
        order_id = first_order_id + i
        payload = {
            **template,
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#B{order_id}",
            "order_number": order_id,
        }
        # Shopify sends compact JSON.
        body = json.dumps(payload, separators=(",", ":")).encode()
        delivery_id = str(uuid.uuid4())
        headers = shopify_headers(
            TOPIC, body, domain=SHOP_DOMAIN, webhook_id=delivery_id, secret=secret,
            triggered_at=now_header(),
        )  # fmt: skip
        lines = [
            "POST /webhooks/shopify HTTP/1.1",
            f"Host: {HOST}:{port}",
            "User-Agent: Shopify-Captain-Hook",
            "Accept: */*",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        prepared.append(Prepared(delivery_id, head + body))
    return prepared


# --------------------------------------------------------------------------- load


@dataclass
class PhaseResult:
    label: str
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, 200 responses only
    statuses: dict[int, int] = field(default_factory=dict)  # status (0: transport error)
    ok_ids: list[str] = field(default_factory=list)
    bodies: dict[bytes, int] = field(default_factory=dict)  # 200 response bodies, counted
    reconnects: int = 0
    retries: int = 0
    timed_out: bool = False
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by group

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


class ConnectionClosed(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server keeps the connection open)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise ConnectionClosed from exc
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep_alive = 0, lines[0].startswith("HTTP/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep_alive = value.strip().lower() != "close"
    body = await reader.readexactly(length) if length else b""
    return status, body, keep_alive


async def run_phase(
    label: str,
    port: int,
    requests: list[Prepared],
    concurrency: int,
    timeout: float,
    max_seconds: float,
) -> PhaseResult:
    """Send every request once, from `concurrency` closed-loop keep-alive senders."""
    result = PhaseResult(label)
    next_index = 0
    connected = 0
    started = asyncio.Event()

    async def connect():
        result.reconnects += 1
        return await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)

    async def sender() -> None:
        nonlocal next_index, connected
        conn = await connect()  # connect before the clock starts
        result.reconnects -= 1
        connected += 1
        await started.wait()
        try:
            while next_index < len(requests):
                request = requests[next_index]
                next_index += 1
                t0 = time.perf_counter()
                status, body = 0, b""
                for attempt in (1, 2):
                    reused = conn is not None
                    try:
                        if conn is None:
                            conn = await connect()
                        reader, writer = conn
                        writer.write(request.raw)
                        async with asyncio.timeout(timeout):
                            status, body, keep = await read_response(reader)
                        if not keep:
                            writer.close()
                            conn = None
                        break
                    except (ConnectionClosed, ConnectionError, TimeoutError, OSError):
                        if conn is not None:
                            conn[1].close()
                            conn = None
                        # A keep-alive connection the server had closed: send once more
                        # (webhooks are deduplicated, so this is what Shopify would do).
                        if attempt == 1 and reused:
                            result.retries += 1
                            continue
                        status = 0
                        break
                latency = time.perf_counter() - t0
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.latencies.append(latency)
                    result.ok_ids.append(request.delivery_id)
                    result.bodies[body] = result.bodies.get(body, 0) + 1
        finally:
            if conn is not None:
                conn[1].close()

    tasks = [asyncio.create_task(sender()) for _ in range(concurrency)]
    # Let every sender connect, then start the clock.
    connect_deadline = time.monotonic() + timeout
    while connected < concurrency and time.monotonic() < connect_deadline:
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.005)
    # This process measures the latency, so its own pauses would count as the
    # server's: a full garbage collection here took up to 82 ms, with every sender
    # stalled mid-request. None runs while the clock does; `measure` froze the
    # pre-built requests, so the collection after the phase is short.
    gc.disable()
    try:
        t_start = time.perf_counter()
        started.set()
        done, pending = await asyncio.wait(tasks, timeout=max_seconds)
        result.elapsed = time.perf_counter() - t_start
    finally:
        gc.enable()
    if pending:
        result.timed_out = True
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            raise task.exception()
    return result


# --------------------------------------------------------------------------- CPU


def _ours_in_postgres(pid: int, database_prefix: str) -> bool:
    """A backend of our databases, or one of the server's own processes (WAL
    writer, checkpointer, ...); not a backend of somebody else's database."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        return False
    is_client_backend = "(" in title or "[local]" in title
    return database_prefix in title or not is_client_backend


def cpu_snapshot(servers: dict[str, Server], database_prefix: str) -> dict[str, float]:
    """CPU seconds so far: this process (the load generator), each server's gunicorn
    processes, PostgreSQL (our backends and its own processes), and the whole machine."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None:
                stats[int(entry)] = stat
    snapshot = {"loadgen": stats.get(os.getpid(), ("", 0, 0.0))[2]}
    for name, server in servers.items():
        master = server.process.pid
        snapshot[name] = sum(
            cpu for pid, (_, ppid, cpu) in stats.items() if pid == master or ppid == master
        )
        # Each worker on its own, to see how keep-alive connections spread over workers.
        for pid, (_, ppid, cpu) in stats.items():
            if ppid == master:
                snapshot[f"{name}/{pid}"] = cpu
    snapshot["postgres"] = sum(
        cpu
        for pid, (comm, _, cpu) in stats.items()
        if comm.startswith("postgres") and _ours_in_postgres(pid, database_prefix)
    )
    snapshot["machine"] = machine_busy_seconds()
    return snapshot


def machine_busy_now(seconds: float = 2.0) -> float:
    """Fraction of all cores busy over the next `seconds`."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds / (os.cpu_count() or 1)


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {name: after[name] - before.get(name, 0.0) for name in after}
    # Kernel work not charged to a process (loopback, disk), and every other process.
    delta["other"] = delta["machine"] - sum(
        v for k, v in delta.items() if k != "machine" and "/" not in k
    )
    return delta


def busiest_worker_share(cpu: dict[str, float], side: str) -> float:
    """The busiest gunicorn worker's share of the side's worker CPU in a phase."""
    workers = [v for k, v in cpu.items() if k.startswith(f"{side}/")]
    return max(workers) / sum(workers) if workers and sum(workers) > 0 else float("nan")


# --------------------------------------------------------------------------- report


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Side:
    name: str
    phases: list[PhaseResult] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(p.ok for p in self.phases)

    @property
    def elapsed(self) -> float:
        return sum(p.elapsed for p in self.phases)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    @property
    def latencies(self) -> list[float]:
        return [x for p in self.phases for x in p.latencies]

    def statuses(self) -> dict[int, int]:
        merged: dict[int, int] = {}
        for phase in self.phases:
            for status, count in phase.statuses.items():
                merged[status] = merged.get(status, 0) + count
        return merged

    def cpu_per_request_ms(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for phase in self.phases:
            for name, seconds in phase.cpu.items():
                total[name] = total.get(name, 0.0) + seconds
        return {name: 1000 * seconds / max(self.ok, 1) for name, seconds in total.items()}


def print_report(
    service: Side, floor: Side, executed: list[PhaseResult], args: argparse.Namespace
) -> None:
    print()
    print(
        f"Per round ({args.concurrency} concurrent senders, "
        f"{args.workers} x {args.worker_class} workers, {args.threads} threads each):"
    )
    print(
        f"  {'round':<6}{'side':<9}{'ok':>7}{'seconds':>9}{'webhooks/s':>12}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'busiest worker':>16}"
    )
    for phase in executed:
        lat = phase.latencies
        p50, p99 = (
            (percentile(lat, 50) * 1000, percentile(lat, 99) * 1000) if lat else (float("nan"),) * 2
        )
        round_name, side = phase.label.split(":")
        share = busiest_worker_share(phase.cpu, side)
        print(
            f"  {round_name:<6}{side:<9}{phase.ok:>7}{phase.elapsed:>9.2f}"
            f"{phase.rate:>12.0f}{p50:>9.1f}{p99:>9.1f}{share:>16.0%}"
        )

    print()
    header = f"{'':<10}{'webhooks/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'answered':>22}"
    print(header)
    for side in (service, floor):
        lat = side.latencies
        p50, p99, worst = (
            (percentile(lat, 50) * 1000, percentile(lat, 99) * 1000, max(lat) * 1000)
            if lat
            else (float("nan"),) * 3
        )
        answered = ", ".join(
            f"{'err' if s == 0 else s}: {n}" for s, n in sorted(side.statuses().items())
        )
        print(f"{side.name:<10}{side.rate:>12.0f}{p50:>9.1f}{p99:>9.1f}{worst:>9.1f}{answered:>22}")
    for side in (service, floor):
        reconnects = sum(p.reconnects for p in side.phases)
        resent = sum(p.retries for p in side.phases)
        if reconnects or resent:
            print(f"  ({side.name}: {reconnects} reconnections, {resent} resent after a close)")
    ratio = service.rate / floor.rate if floor.rate else 0.0
    print(f"{'ratio':<10}{ratio:>12.2f}   (service / floor throughput, all rounds)")
    # Each round's service phase against the floor phase next to it in time.
    pairs = [s.rate / f.rate for s, f in zip(service.phases, floor.phases, strict=True) if f.rate]
    if pairs:
        print(
            f"{'':<10}{statistics.median(pairs):>12.2f}   (median of the per-round ratios: "
            + " ".join(f"{r:.2f}" for r in pairs)
            + ")"
        )

    print()
    print("CPU per webhook (ms of CPU time, all cores):")
    groups = ("service", "floor", "postgres", "loadgen", "other", "machine")
    print(f"  {'side':<10}" + "".join(f"{g:>10}" for g in groups))
    for side in (service, floor):
        cpu = side.cpu_per_request_ms()
        print(f"  {side.name:<10}" + "".join(f"{cpu.get(g, 0.0):>10.2f}" for g in groups))
    # On a saturated machine throughput goes as 1 / CPU per webhook: this estimate of the
    # ratio counts only our processes, so it moves less when something else runs.
    ours = ("service", "floor", "postgres", "loadgen")
    cost = {
        side.name: sum(side.cpu_per_request_ms().get(g, 0.0) for g in ours)
        for side in (service, floor)
    }
    if cost["service"] > 0:
        print(
            f"  CPU-cost ratio (floor / service CPU per webhook, our processes only): "
            f"{cost['floor'] / cost['service']:.2f}"
        )
    busy = {
        side.name: sum(p.cpu.get("machine", 0.0) for p in side.phases) / max(side.elapsed, 1e-9)
        for side in (service, floor)
    }
    print(
        f"  machine busy: service {busy['service'] / os.cpu_count():.0%}, "
        f"floor {busy['floor'] / os.cpu_count():.0%} of {os.cpu_count()} cores"
    )

    p99 = percentile(service.latencies, 99) * 1000 if service.latencies else float("inf")
    ratio_ok, p99_ok = ratio >= GOAL_RATIO, p99 < GOAL_P99_MS
    print()
    print(f"Goal at {args.concurrency} concurrent senders (printed, not asserted):")
    print(f"  throughput ratio >= {GOAL_RATIO}: {ratio:.2f}  {'MET' if ratio_ok else 'NOT MET'}")
    print(f"  service p99 < {GOAL_P99_MS:.0f} ms: {p99:.1f} ms  {'MET' if p99_ok else 'NOT MET'}")
    # Latency at a fixed number of closed-loop senders is mostly queueing, so the
    # floor's own p99 says what this machine allows at all.
    floor_p99 = percentile(floor.latencies, 99) * 1000 if floor.latencies else float("inf")
    print(f"  (the floor's own p99 in this run: {floor_p99:.1f} ms)")


def check_exactly_once(service_url: str, ok_ids: list[str], redelivered: int) -> bool:
    """Every delivery answered 200 is in the inbox exactly once."""
    with psycopg.connect(service_url.replace("+psycopg", "")) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT delivery_id) FROM inbox"
        ).fetchone()
        stored = [r[0] for r in conn.execute("SELECT delivery_id FROM inbox").fetchall()]
    answered = set(ok_ids)
    stored_set = set(stored)
    missing = answered - stored_set
    unanswered = stored_set - answered
    print()
    print("Exactly-once (service inbox):")
    print(f"  distinct deliveries answered 200: {len(answered)} (of {len(ok_ids)} 200s,")
    print(f"    {redelivered} of them racing redeliveries of already-stored ids)")
    print(f"  inbox rows: {rows}, distinct delivery_id: {distinct}")
    print(f"  answered 200 but not in the inbox: {len(missing)}")
    print(f"  in the inbox more than once: {rows - distinct}")
    print(f"  in the inbox but not answered 200: {len(unanswered)}")
    good = not missing and rows == distinct and rows == len(answered)
    print(f"  exactly once: {'YES' if good else 'NO'}")
    return good


# --------------------------------------------------------------------------- main


async def measure(
    args: argparse.Namespace, servers: dict[str, Server], secret: str, prefix: str
) -> tuple:
    service = servers["service"]
    per_round = max(1, args.requests // args.rounds)
    order_id = 7_000_000_000
    sides = {"service": Side("service"), "floor": Side("floor")}
    all_ok_ids: list[str] = []
    executed: list[PhaseResult] = []

    def prepare(name: str, count: int) -> list[Prepared]:
        nonlocal order_id
        prepared = build_requests(secret, servers[name].port, count, order_id)
        order_id += count
        return prepared

    # Pre-sign everything before any clock runs.
    warmup = {name: prepare(name, args.warmup) for name in servers}
    rounds = [{name: prepare(name, per_round) for name in servers} for _ in range(args.rounds)]
    gc.collect()
    gc.freeze()  # the requests live for the whole run: no collection need walk them again

    print(f"Warm-up: {args.warmup} webhooks to each side ...", flush=True)
    for name in ("service", "floor"):
        result = await run_phase(
            f"warm:{name}", servers[name].port, warmup[name], args.concurrency, 30, 120
        )
        print(f"  {name}: {result.ok}/{len(warmup[name])} answered 200, {result.rate:.0f}/s")
        if name == "service":
            all_ok_ids += result.ok_ids
        if result.ok == 0:
            raise RuntimeError(f"{name} answered no webhook with 200: {result.statuses}")

    print(
        f"Measuring: {args.rounds} rounds x {per_round} webhooks per side, "
        f"alternating which side goes first ...",
        flush=True,
    )
    for index, batch in enumerate(rounds):
        order = ("service", "floor") if index % 2 == 0 else ("floor", "service")
        for name in order:
            await asyncio.sleep(args.pause)
            before = cpu_snapshot(servers, prefix)
            result = await run_phase(
                f"{index + 1}:{name}",
                servers[name].port,
                batch[name],
                args.concurrency,
                args.timeout,
                args.max_seconds,
            )
            result.cpu = cpu_delta(before, cpu_snapshot(servers, prefix))
            sides[name].phases.append(result)
            executed.append(result)
            if name == "service":
                all_ok_ids += result.ok_ids
            print(
                f"  round {index + 1} {name:<8} {result.ok:>6} ok in {result.elapsed:6.2f}s "
                f"= {result.rate:6.0f}/s"
                + (" (stopped at the time limit)" if result.timed_out else ""),
                flush=True,
            )

    # Racing redeliveries: each of some already-stored deliveries sent twice at once.
    stored = [r for batch in rounds for r in batch["service"]]
    ok = set(all_ok_ids)
    resend = [r for r in stored if r.delivery_id in ok][: args.redeliveries]
    racing = [r for r in resend for _ in (0, 1)]
    redelivery = await run_phase(
        "redeliver:service", service.port, racing, args.concurrency, args.timeout, 120
    )
    duplicate_bodies = sum(n for body, n in redelivery.bodies.items() if b"duplicate" in body)
    print(
        f"Redelivery: {len(racing)} sends of {len(resend)} stored ids (each twice at once): "
        f"{redelivery.ok} answered 200, {duplicate_bodies} said duplicate",
        flush=True,
    )
    ok_ids = all_ok_ids + redelivery.ok_ids
    return sides["service"], sides["floor"], executed, ok_ids, redelivery.ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8000, help="measured webhooks per side")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent senders")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds per side")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up webhooks per side")
    parser.add_argument("--redeliveries", type=int, default=250, help="ids redelivered twice")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds idle between phases")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="time limit per phase")
    parser.add_argument(
        "--service-app",
        default="app.wsgi:application",
        help="WSGI app of the service side (to try a change before making it)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log every request to stdout, as `careloop serve` does (both sides)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the gunicorn logs")
    args = parser.parse_args()
    if not (0 < args.requests <= 200_000 and 0 < args.concurrency <= 1024):
        parser.error("--requests must be in 1..200000 and --concurrency in 1..1024")
    if args.rounds < 1 or args.requests < args.rounds:
        parser.error("--rounds must be between 1 and --requests")

    from cryptography.fernet import Fernet

    secret = "shpss_bench_" + secrets.token_urlsafe(24)
    prefix = f"careloop_bench_{secrets.token_hex(5)}"
    log_dir = Path(tempfile.mkdtemp(prefix="careloop_bench_"))
    print(f"Machine: {os.cpu_count()} cores, {cpu_model()}; PostgreSQL at {pg_address()}")
    print(f"Databases: {prefix}, {prefix}_floor (dropped at the end)")
    busy = machine_busy_now()
    print(f"Machine busy before the run: {busy:.0%} of all cores")
    if busy > 0.15:
        print("  WARNING: something else is using the CPU; figures will be low and noisy.")

    databases: tuple[str, ...] = ()
    servers: dict[str, Server] = {}
    exit_code = 1  # until the run has finished
    try:
        names = (prefix, f"{prefix}_floor")
        create_databases(*names)
        databases = names
        service_url, floor_url = (sa_url(name) for name in databases)
        prepare_service_db(service_url)
        prepare_floor_db(floor_url)

        service_env = {
            "CARELOOP_ENV": "production",
            "CARELOOP_WITHOUT_PROVIDER": "hold",  # no worker runs here; nothing is sent
            "DATABASE_URL": service_url,
            "CARELOOP_SECRET_KEY": secrets.token_urlsafe(48),
            "CARELOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "SHOPIFY_API_KEY": "bench-client-id",
            "SHOPIFY_API_SECRET": secret,
            "CARELOOP_INSTANCE_DIR": str(log_dir / "instance"),
            "CARELOOP_LOG_LEVEL": "WARNING",
            # As in the Docker image: counters summed over gunicorn's workers.
            "PROMETHEUS_MULTIPROC_DIR": str(log_dir / "metrics"),
        }
        floor_env = {
            "SHOPIFY_API_SECRET": secret,
            "FLOOR_DATABASE_URL": floor_url,
            "FLOOR_POOL_SIZE": str(args.threads),
        }
        servers["service"] = start_server("service", args.service_app, service_env, args, log_dir)
        servers["floor"] = start_server("floor", "floor_app:application", floor_env, args, log_dir)
        for server in servers.values():
            wait_ready(server)
        print(
            f"gunicorn: {args.workers} x {args.worker_class} workers, {args.threads} threads; "
            f"service on :{servers['service'].port}, floor on :{servers['floor'].port}"
        )

        service, floor, executed, ok_ids, redelivered = asyncio.run(
            measure(args, servers, secret, prefix)
        )
        print_report(service, floor, executed, args)
        exit_code = 0
        if not check_exactly_once(service_url, ok_ids, redelivered):
            exit_code = 1
        for server in servers.values():
            if server.process.poll() is not None:
                print(f"{server.name} died during the run:\n{server.log_tail()}")
                exit_code = 1
    finally:
        for server in servers.values():
            stop_process(server.process, timeout=20)  # gunicorn's master stops its workers
        if databases:
            drop_databases(*databases)
        if args.keep_logs or exit_code != 0:
            print(f"gunicorn logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
