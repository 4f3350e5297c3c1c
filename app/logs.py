"""Logging set-up. Log lines name what happened and to which shop; they never
carry request bodies, headers or secrets.

Production writes one JSON object a line (for a log pipeline to index);
development writes readable text. Either way each line carries the context
it happened in, where known: the shop, the request or job id, and the
webhook or inbox message id (`log_context`, `add_log_context`).

Request lines are the exception we cannot avoid writing, so secrets that
travel in URLs are blanked out of every line on its way to a handler: ours
(the embedded server's request log comes through the `werkzeug` logger, and
Flask logs the path of a request that failed) and gunicorn's access and
error logs (gunicorn.conf.py installs the same filter there).
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

from pythonjsonlogger.json import JsonFormatter

# Secrets that travel in URLs: ShipBob's legacy webhook URL `key` (the only
# thing that authenticates those deliveries), Shopify's App Bridge session
# token (`id_token`, on admin links to our pages) and OAuth authorization
# `code` (on /auth/callback), and the tokens that are a link's path: an
# unsubscribe link (/u/<token>), a survey's (/s/<token>) and a sign-in link
# (/app/sign-in/<link>, a credential to the shop's pages for up to 30 days).
_SECRET_PARAMETER = re.compile(r"(?<![A-Za-z0-9_.-])(key|id_token|code)=[^&\s\"']*", re.I)
_PATH_TOKEN = re.compile(r"(/u/|/s/|/app/sign-in/)[^/?#\s\"']+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the secrets a URL in it may carry blanked out."""
    text = _SECRET_PARAMETER.sub(rf"\1={REDACTED}", text)
    return _PATH_TOKEN.sub(rf"\1{REDACTED}", text)


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


# The fields a line may carry, in the order text lines show them.
FIELDS = ("shop", "shop_id", "request_id", "job_id", "webhook_id", "inbox_id")
# Never changed in place: each change sets a new mapping.
_CONTEXT: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "careloop_log_context", default=MappingProxyType({})
)
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Within the block, every log line carries `fields` (and the enclosing
    block's); a request, a job run or one inbox message is one block."""
    token = _CONTEXT.set({**_CONTEXT.get(), **_known(fields)})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class _RequestFields(Mapping[str, object]):
    """A web request's fields, read from its headers only when a line is
    first written: most requests write none, and a webhook must not pay for
    an id and three checks it never uses (measured: 0.2 ms of the ~1 ms a
    webhook costs under gunicorn)."""

    def __init__(self, environ: Mapping[str, object], enclosing: Mapping[str, object], shop_ok):
        self._environ, self._enclosing, self._shop_ok = environ, enclosing, shop_ok
        self._fields: dict[str, object] | None = None

    def _resolved(self) -> dict[str, object]:
        if self._fields is None:
            environ = self._environ  # WSGI: a header X-A-B is HTTP_X_A_B
            request_id = str(environ.get("HTTP_X_REQUEST_ID", ""))
            webhook_id = str(environ.get("HTTP_X_SHOPIFY_WEBHOOK_ID", ""))
            shop = str(environ.get("HTTP_X_SHOPIFY_SHOP_DOMAIN", ""))
            self._fields = {
                **self._enclosing,
                # A caller's X-Request-Id is kept when it is a plain token.
                "request_id": request_id if _TOKEN.fullmatch(request_id) else uuid.uuid4().hex,
                **({"webhook_id": webhook_id} if _TOKEN.fullmatch(webhook_id) else {}),
                **({"shop": shop} if self._shop_ok(shop) else {}),
            }
        return self._fields

    def __getitem__(self, name: str) -> object:
        return self._resolved()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())


_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def with_request_context(wsgi_app, shop_ok: Callable[[str], bool]):
    """`wsgi_app` whose every log line carries the request's id (the
    caller's X-Request-Id, or a new one) and, for a Shopify webhook, the
    shop and the webhook id from its headers. WSGI middleware rather than
    Flask hooks: on the webhook path, the hooks cost more than the rest."""

    def app(environ, start_response):
        token = _CONTEXT.set(_RequestFields(environ, _CONTEXT.get(), shop_ok))
        try:
            return wsgi_app(environ, start_response)
        finally:
            _CONTEXT.reset(token)

    return app


def add_log_context(**fields: object) -> None:
    """Add fields learnt inside a block (the message a worker just claimed)."""
    _CONTEXT.set({**_CONTEXT.get(), **_known(fields)})


def _known(fields: dict[str, object]) -> dict[str, object]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {', '.join(sorted(unknown))}")
    return {name: value for name, value in fields.items() if value is not None}


class _FieldsFilter(logging.Filter):
    """Sets the known context fields on each record; the JSON formatter
    writes a record's extra attributes as fields of the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _CONTEXT.get().items():
            setattr(record, name, value)
        return True


class _TextFilter(logging.Filter):
    """Puts the context after the message, as ` key=value` pairs."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get()
        record.context = "".join(f" {name}={context[name]}" for name in FIELDS if name in context)
        return True


def configure_logging(level: str, *, json_lines: bool = False) -> None:
    """Log to stderr at `level`: JSON lines when `json_lines` (production)."""
    handler = logging.StreamHandler()
    if json_lines:
        handler.addFilter(_FieldsFilter())
        handler.setFormatter(
            JsonFormatter(
                ["asctime", "levelname", "name", "message"],
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.addFilter(_TextFilter())
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    redact_handlers(logging.getLogger())
    # The embedded server logs each request line; keep it, but not at DEBUG noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
