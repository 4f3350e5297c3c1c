"""Real processes and servers for tests: CareLoop itself started with
`python -m app`, logged to a file each and always stopped (the `processes`
fixture in conftest.py), and stand-ins for outside systems served on
loopback (`serve_wsgi`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.config import ROOT

# Both are guards against a hang, not measures of speed: reaching one on a
# slow machine must not turn the suite red, so they are generous, and a
# process that does not stop in time is killed rather than reported.
STOP_TIMEOUT = 15.0
WAIT_TIMEOUT = 120.0


def child_env(values: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CareLoop's settings, plus `values`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CARELOOP_", "SHOPIFY_", "SMTP_", "POSTMARK_", "TWILIO_"))
        and name not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    env["PYTHONUNBUFFERED"] = "1"  # output reaches the log files as it happens
    env.update(values or {})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A long-running command; stdout and stderr go to one log file, so no
    pipe can fill up and block it, and its output survives for the report."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.log = log
        with log.open("wb") as handle:
            self.popen = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,  # where gunicorn finds gunicorn.conf.py, as in the image
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                # Its own process group: a signal meant for pytest does not reach
                # it, and killing the group also reaps children such as
                # gunicorn's workers, which would otherwise keep the port.
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL if it does not stop in time; always reaped.

        A slow shutdown is not an error: the tests that care about a graceful
        stop look at the exit code this returns."""
        if self.running():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
        returncode = self.popen.wait()
        self._kill_group()  # children the parent left behind
        return returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would; returns once the process is reaped."""
        self._kill_group()
        self.popen.wait()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(self.popen.pid, signal.SIGKILL)

    def fail(self, problem: str) -> None:
        pytest.fail(f"{problem}\n--- output of {self.name} ---\n{self.output()}")


def wait_until(
    condition: Callable[[], bool], process: Process, what: str, timeout: float = WAIT_TIMEOUT
) -> None:
    """Poll `condition` while `process` runs; fail with its output otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if not process.running():
            process.fail(f"{process.name} exited ({process.popen.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.01)


class Processes:
    def __init__(self, directory: Path):
        self.directory = directory
        self.started: list[Process] = []

    def start(self, name: str, *args: str, env: dict[str, str]) -> Process:
        """Start `careloop ARGS` (as `python -m app`)."""
        return self.start_command(name, [sys.executable, "-m", "app", *args], env=env)

    def start_command(self, name: str, argv: list[str], *, env: dict[str, str]) -> Process:
        process = Process(name, argv, env, self.directory / f"{name}.log")
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """Stop every process, even when stopping one of them fails."""
        problems = []
        for process in reversed(self.started):
            try:
                process.stop()
            except OSError as exc:
                problems.append(f"{process.name}: {exc}")
        if problems:
            raise RuntimeError("could not stop: " + "; ".join(problems))


@contextmanager
def serve_wsgi(app: Callable) -> Iterator[str]:
    """Serve a WSGI app (a stand-in) on a free loopback port, in a thread;
    yields its base URL and stops it afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
