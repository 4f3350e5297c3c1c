"""Logging set-up. Log lines name what happened and to which shop; they never
carry request bodies, headers or secrets.

Request lines are the exception we cannot avoid writing, so secrets that
travel in URLs are blanked out of every line on its way to a handler: ours
(the embedded server's request log comes through the `werkzeug` logger, and
Flask logs the path of a request that failed) and gunicorn's access and
error logs (gunicorn.conf.py installs the same filter there).
"""

from __future__ import annotations

import logging
import re

# Secrets that travel in URLs: ShipBob's legacy webhook URL `key` (the only
# thing that authenticates those deliveries), Shopify's App Bridge session
# token (`id_token`, on admin links to our pages) and OAuth authorization
# `code` (on /auth/callback), and the token of an unsubscribe link (/u/<token>).
_SECRET_PARAMETER = re.compile(r"(?<![A-Za-z0-9_.-])(key|id_token|code)=[^&\s\"']*", re.I)
_UNSUBSCRIBE_TOKEN = re.compile(r"/u/[^/?#\s\"']+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the secrets a URL in it may carry blanked out."""
    text = _SECRET_PARAMETER.sub(rf"\1={REDACTED}", text)
    return _UNSUBSCRIBE_TOKEN.sub(f"/u/{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Rewrites each record's message with `redact` before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def redact_handlers(logger: logging.Logger) -> None:
    """Put the filter on every handler of `logger`: a filter on a logger
    would miss the records its children propagate to those handlers."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    redact_handlers(logging.getLogger())
    # The embedded server logs each request line; keep it, but not at DEBUG noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
