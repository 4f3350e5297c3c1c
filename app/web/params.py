"""Strict parsing of what a URL carries: ids in paths, cursors and numbers in
query strings.

Every id we store is a signed 64-bit integer (BIGINT on PostgreSQL, INTEGER
on SQLite): a larger one cannot name a row, and handing it to the database
raises (psycopg's DataError, sqlite3's OverflowError) instead of finding
nothing. Python's `str.isdigit()` and `int()` also accept non-ASCII digits
(`int("٣") == 3`, and `"²".isdigit()` although `int("²")` fails), so only
the ASCII digits 0-9 are taken here.
"""

from __future__ import annotations

import re

from werkzeug.routing import BaseConverter, ValidationError

MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(raw: str) -> int | None:
    """`raw` as an id (1 to 2^63 - 1, ASCII digits only), else None."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def parse_whole_number(raw: str, low: int, high: int) -> int | None:
    """`raw` as a whole number from `low` to `high` (ASCII digits), else None."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


class IdConverter(BaseConverter):
    """`<id:name>` in a route: an id a row could have; anything else is no
    match, so the request is answered 404 like any unknown path."""

    regex = r"[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        parsed = parse_id(value)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value: int) -> str:
        return str(value)
