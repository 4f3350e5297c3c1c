"""The production server settings in gunicorn.conf.py, checked on a real
gunicorn: what they promise must hold in the workers that serve requests."""

from __future__ import annotations

import subprocess
import sys
import time

import requests

from app.config import ROOT
from tests.processes import child_env, free_port

# Answers with the number of objects the collector has frozen in this worker.
_PROBE_APP = """
import gc

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(gc.get_freeze_count()).encode()]
"""


def test_workers_serve_with_the_loaded_application_frozen_out_of_the_collector(tmp_path):
    (tmp_path / "probe_app.py").write_text(_PROBE_APP)
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--pythonpath", str(tmp_path),
        "probe_app:application",
    ]  # fmt: skip
    server = subprocess.Popen(
        command,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not answer within 20 s"
                time.sleep(0.1)
        assert answer.status_code == 200
        # Without the hook nothing is frozen (0); with it, the interpreter,
        # gunicorn and the app: thousands of objects.
        assert int(answer.text) > 1000
    finally:
        server.terminate()
        server.wait(15)
