"""The suite's own process helper: a slow machine may make a test slower,
never red, and a stopped server leaves nothing behind (issue #14)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FAILURE_REPORT
from processes import WAIT_TIMEOUT, Processes, child_env, wait_until

# Ignores SIGTERM, as a server busy finishing its requests would, and starts a
# child in its own process group, as gunicorn starts its workers.
_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"  # a zombie is dead, merely not yet reaped


def test_a_process_that_ignores_sigterm_is_killed_with_its_children_not_reported(tmp_path):
    processes = Processes(tmp_path)
    stubborn = processes.start_command(
        "stubborn", [sys.executable, "-c", _STUBBORN], env=child_env()
    )
    wait_until(lambda: stubborn.output().strip().isdigit(), stubborn, "the child to start")
    child = int(stubborn.output().strip())

    assert stubborn.stop(timeout=0.2) == -signal.SIGKILL
    assert not stubborn.running()
    deadline = time.monotonic() + 10  # the kernel delivers SIGKILL at once; reparenting may lag
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_stopping_every_process_reaps_one_already_gone_and_stops_the_rest(tmp_path):
    processes = Processes(tmp_path)
    quick = processes.start_command("quick", [sys.executable, "-c", "pass"], env=child_env())
    slow = processes.start_command(
        "slow", [sys.executable, "-c", "import time; time.sleep(600)"], env=child_env()
    )
    quick.popen.wait()
    processes.stop_all()
    assert quick.popen.returncode == 0
    assert slow.popen.returncode == -signal.SIGTERM


_FAILING_TEST = """
import sys

def test_that_fails(processes):
    server = processes.start_command(
        "probe-server", [sys.executable, "-c", "print('probe server', 'log line')"], env={}
    )
    server.popen.wait()
    print("probe captured", "output")  # the report must hold the output, not only the source
    assert "expected" == "actual"
"""


def test_a_failing_test_leaves_its_tail_and_its_servers_logs_in_the_ci_failure_report(tmp_path):
    (tmp_path / "test_probe.py").write_text(_FAILING_TEST)
    report = tmp_path / "failures.txt"
    tests_dir = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-c", os.devnull,
         "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py")],
        env=child_env({"PYTHONPATH": str(tests_dir), FAILURE_REPORT: str(report)}),
        cwd=tmp_path, capture_output=True, text=True, timeout=WAIT_TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    text = report.read_text()
    assert "test_probe.py::test_that_fails (call)" in text
    assert "assert 'expected' == 'actual'" in text
    assert "probe captured output" in text
    assert "probe server log line" in text
