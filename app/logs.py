"""Logging set-up. Log lines name what happened and to which shop; they never
carry request bodies, headers or secrets."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # The embedded server logs each request line; keep it, but not at DEBUG noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
