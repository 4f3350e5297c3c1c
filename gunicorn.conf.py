"""Gunicorn settings for `careloop serve`.

`careloop serve` passes --bind, --workers and --access-logfile (and --threads
when given) on the command line; those win over this file. Gunicorn loads
./gunicorn.conf.py from the working directory by default, which is the project
root in the Docker image (WORKDIR /app); elsewhere, pass it explicitly
(`--config <root>/gunicorn.conf.py`).
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from pathlib import Path

from gunicorn.glogging import Logger

from app.logs import redact_handlers

# Threaded workers: a webhook request spends most of its time waiting on
# PostgreSQL, so one process overlaps several, and the requests that wait
# together share one INSERT and one commit (app.inbox_writer). Threads also
# keep connections alive, where sync workers pay a TCP connect per request.
# The database pool (app.db) holds as many connections as a process has threads.
worker_class = "gthread"
threads = 8

# Each worker listens on a socket of its own (SO_REUSEPORT; gunicorn then opens
# none in the arbiter), and Linux spreads new connections over them by a hash of
# the connection (BSD and macOS accept the option but do not spread). On one
# shared socket, whichever worker woke first took the connection: of 64
# keep-alive connections, one worker often held 46 to all 64, and since a
# keep-alive connection stays on its worker, that worker's queue set the
# latency of most requests (bench/README.md).
reuse_port = True

# Workers' heartbeat files on tmpfs: on an overlay filesystem (a container's
# /tmp) their writes can stall and get healthy workers killed on timeout.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Gunicorn >= 25 otherwise opens a control socket (for `gunicornc`) under
# $HOME/.gunicorn: we do not use it, several instances would share its path,
# and the image's user has no writable home. Older versions ignore the name.
control_socket_disable = True


class RedactingLogger(Logger):
    """Gunicorn's logger, with secrets blanked out of URLs in the access log
    (its request line, path, query and referer) and in the error log."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        redact_handlers(self.access_log)
        redact_handlers(self.error_log)


logger_class = RedactingLogger


def _prometheus_dir() -> Path | None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(directory) if directory else None


def _check_addresses_free(server) -> None:
    """Refuse to start on an address another program listens on.

    With reuse_port only the workers bind, and gunicorn answers a worker that
    cannot bind by starting another: a taken port would loop for ever instead
    of stopping start-up. A trial bind here, in the arbiter, fails as the
    workers' would. (Another gunicorn of the same user with reuse_port would
    share the port instead: README, "Running in production".)"""
    for address in server.cfg.address:
        if not isinstance(address, tuple):  # a unix socket path: no reuse_port
            continue
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as trial:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                trial.bind(address[:2])
            except OSError as exc:
                host, port = address[:2]
                raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


class _ListeningAddress(logging.Filter):
    """Gunicorn logs "Listening at: %s (%s)" with the arbiter's own sockets,
    and under reuse_port it opens none, so the address came out empty. Fill
    in the addresses the workers listen on instead."""

    def __init__(self, addresses: str):
        super().__init__()
        self.addresses = addresses

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Listening at: %s") and record.args and not record.args[0]:
            record.args = (self.addresses, *record.args[1:])
        return True


def _address_text(address) -> str:
    if isinstance(address, tuple):
        host = f"[{address[0]}]" if ":" in address[0] else address[0]
        return f"http://{host}:{address[1]}"
    return f"unix:{address}"


def on_starting(server) -> None:
    """Check the addresses are free, log them, and start the
    summed-over-workers metrics from a clean directory (app.metrics)."""
    _check_addresses_free(server)
    addresses = ",".join(_address_text(a) for a in server.cfg.address)
    server.log.error_log.addFilter(_ListeningAddress(addresses))
    directory = _prometheus_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def post_worker_init(worker) -> None:
    """Take the loaded application out of the garbage collector's sight.

    A worker imports the app and its libraries (SQLAlchemy, pydantic, Babel,
    Jinja, …): about 116,000 long-lived objects, which every full collection
    walked again. Under load those collections stopped a worker for 50 to 100 ms
    with all its requests in flight, which was most of the webhook p99
    (bench/README.md). `gc.freeze()` (Python >= 3.7) moves every object
    tracked so far to a permanent generation that collections skip; the
    collect before it keeps the import-time garbage out of that generation.
    """
    gc.collect()
    gc.freeze()


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges from the multi-process metrics."""
    if _prometheus_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
