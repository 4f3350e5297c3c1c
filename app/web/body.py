"""Reading a request body within the size limit, however it was sent.

With a Content-Length over the limit, Werkzeug refuses at once (413). A
streamed body (`Transfer-Encoding: chunked`) has no length: gunicorn marks
its input as terminated, and Werkzeug then reads at most the limit and
returns what it read, cut, without a word (werkzeug.wsgi.LimitedStream
stops at `is_exhausted`). A signed body cut short then failed its signature
check and was answered 401, where the truth is 413.
"""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge


def read_body(limit: int, *, cache: bool) -> bytes:
    """The whole raw body, or RequestEntityTooLarge when it exceeds `limit`
    bytes. `cache` keeps it for `request.form` / `get_json` to parse."""
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
    body = request.get_data(cache=cache)
    if (
        len(body) >= limit
        and request.content_length is None
        and request.environ.get("wsgi.input_terminated")
        and request.input_stream.read(1)
    ):
        raise RequestEntityTooLarge()
    return body
