"""Strict parsing of what a URL carries: ids in paths, cursors and numbers in
query strings.

An id no column can hold cannot name a row, and handing it to the database
raises (psycopg's DataError, sqlite3's OverflowError) instead of finding
nothing. Shopify's ids are BIGINT columns (up to 2^63 - 1); our own rows'
ids are INTEGER (up to 2^31 - 1 on PostgreSQL). Python's `str.isdigit()`
and `int()` also accept non-ASCII digits (`int("٣") == 3`, and `"²".isdigit()`
although `int("²")` fails), so only the ASCII digits 0-9 are taken here.
"""

from __future__ import annotations

import re

from werkzeug.routing import BaseConverter, ValidationError

SHOPIFY_ID_MAX = 2**63 - 1
ROW_ID_MAX = 2**31 - 1
DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII digits, at most a BIGINT's 19


def parse_whole_number(raw: str, low: int, high: int) -> int | None:
    """`raw` as a whole number from `low` to `high` (ASCII digits), else None."""
    if not DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


class _BoundedId(BaseConverter):
    """An id a row could have; anything else is no match, so the request is
    answered 404 like any unknown path."""

    regex = DIGITS.pattern
    maximum: int

    def to_python(self, value: str) -> int:
        parsed = parse_whole_number(value, 1, self.maximum)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value: int) -> str:
        return str(int(value))


class ShopifyIdConverter(_BoundedId):
    """`<shopify_id:name>`: an order's or a customer's id at Shopify."""

    maximum = SHOPIFY_ID_MAX


class RowIdConverter(_BoundedId):
    """`<row_id:name>`: one of our own rows (an inbox message, a job)."""

    maximum = ROW_ID_MAX


CONVERTERS = {"shopify_id": ShopifyIdConverter, "row_id": RowIdConverter}
