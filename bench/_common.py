"""Helpers shared by bench/webhooks.py and bench/notifications.py: the scratch
databases, stopping a child process, and CPU time read from /proc.

Imported as `_common` by those scripts (Python puts bench/ first on sys.path when it
runs a script from here), so it imports nothing from the project: bench/webhooks.py
takes bench/ off sys.path, and puts the project on it, only after importing this."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import psycopg

PG_ADMIN_URL = os.environ.get("CARELOOP_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- databases


def pg_address(admin_url: str = PG_ADMIN_URL) -> str:
    """host:port of the PostgreSQL server an admin URL points at."""
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"


def sa_url(database: str, admin_url: str = PG_ADMIN_URL) -> str:
    """postgresql+psycopg:// URL of `database` on the admin URL's server."""
    base = admin_url.rsplit("/", 1)[0].replace("postgresql:", "postgresql+psycopg:", 1)
    return f"{base}/{database}"


def create_databases(*names: str) -> None:
    """Create empty databases on the server of PG_ADMIN_URL."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_databases(*names: str) -> None:
    """Drop databases (if they exist), disconnecting whoever is still connected."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- processes


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then, after `timeout` s, SIGKILL to its process group (every child is
    started with start_new_session=True, so that group is the child and its own)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# --------------------------------------------------------------------------- CPU


def proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, CPU seconds of its own threads) of a process, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process's own threads; 0 if it is gone."""
    stat = proc_stat(pid)
    return stat[2] if stat is not None else 0.0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (all cores) since boot."""
    with open("/proc/stat") as handle:
        values = [int(x) for x in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
