"""The production server settings in gunicorn.conf.py, checked on a real
gunicorn: what they promise must hold in the workers that serve requests."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time

import pytest
import requests
from processes import Processes, child_env, free_port, wait_until

from app.config import ROOT

# Answers with its worker's pid and how many objects the collector has frozen there.
_PROBE_APP = """
import gc, json, os

def application(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "frozen": gc.get_freeze_count()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""
WORKERS = 2


def _gunicorn(tmp_path, port: int) -> list[str]:
    """The command for gunicorn with the project's config and two workers, serving the probe."""
    (tmp_path / "probe_app.py").write_text(_PROBE_APP)
    return [
        sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
        "--pythonpath", str(tmp_path), "probe_app:application",
    ]  # fmt: skip


@pytest.fixture
def server(tmp_path, processes: Processes) -> int:
    """The probe served on a free port; the port. The `processes` fixture
    stops it (SIGTERM, then SIGKILL) and keeps its log for the report."""
    port = free_port()
    gunicorn = processes.start_command("gunicorn", _gunicorn(tmp_path, port), env=child_env())

    def answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/", timeout=2).ok
        except requests.ConnectionError:
            time.sleep(0.1)
            return False

    wait_until(answers, gunicorn, "gunicorn to answer")
    return port


def _listening_sockets(port: int) -> list[str]:
    """Inodes of the TCP sockets listening on 127.0.0.1:`port` (Linux /proc)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    local = f"0100007F:{port:04X}"
    return [row[9] for row in rows if row[1] == local and row[3] == "0A"]  # 0A: LISTEN


def test_workers_serve_with_the_loaded_application_frozen_out_of_the_collector(server):
    answer = requests.get(f"http://127.0.0.1:{server}/", timeout=5).json()
    # Without the hook nothing is frozen (0); with it, the interpreter,
    # gunicorn and the app: thousands of objects.
    assert answer["frozen"] > 1000


def test_each_worker_listens_on_its_own_socket_and_connections_reach_all_of_them(server):
    # One socket per worker: the kernel, not a race between workers, picks
    # which one gets a connection. On a shared socket there is one listener.
    deadline = time.monotonic() + 10  # the second worker may still be starting
    while len(_listening_sockets(server)) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(set(_listening_sockets(server))) == WORKERS
    connections = [http.client.HTTPConnection("127.0.0.1", server, timeout=5) for _ in range(64)]
    pids = set()
    for connection in connections:
        connection.request("GET", "/")
        pids.add(json.loads(connection.getresponse().read())["pid"])
        connection.close()
    assert len(pids) == WORKERS


def test_a_port_another_program_listens_on_stops_start_up_with_a_line_naming_it(tmp_path):
    # Only the workers bind (reuse_port), and gunicorn replaces a worker that
    # cannot: without the arbiter's own check this would retry for ever.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            _gunicorn(tmp_path, port), env=child_env(), capture_output=True, text=True, timeout=30
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_start_up_logs_the_address_it_listens_on(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        _gunicorn(tmp_path, port), env=child_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        process.terminate()
        try:
            _, log = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            # A worker still booting when the master is told to stop has
            # not yet set its own signal handlers, so it misses the TERM and
            # lives until gunicorn's graceful timeout (30 s): not this
            # test's subject, which is the log written at start-up.
            process.kill()
            _, log = process.communicate(timeout=15)
    assert f"Listening at: http://127.0.0.1:{port} ({process.pid})" in log, log
