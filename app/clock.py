"""Time, as one injectable object.

Every timestamp is an aware datetime in UTC (SQLModel's UTCDateTime refuses
naive ones; SQLite stores them as UTC without an offset). Domain functions take
`now` as an argument; the app, the worker and the scheduler get it from a
`Clock`, which tests replace with a frozen one they can move.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(moment: datetime) -> datetime:
    """Convert to UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_timestamp(value: object) -> datetime | None:
    """Parse an ISO-8601 timestamp as Shopify sends it (offset included).
    Raises ValueError for anything else, a moment outside years 1 to 9999
    in UTC included (`9999-12-31T23:00-05:00` is one: converting it
    overflows)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 timestamp, got {value!r}")
    try:
        return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except OverflowError:
        raise ValueError(f"timestamp out of range: {value[:40]!r}") from None


def from_unix_seconds(value: int) -> datetime:
    """A Unix time in seconds as an aware UTC datetime; ValueError when it
    falls outside what datetime can hold (years 1 to 9999)."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"Unix time out of range: {value}") from None


class Clock:
    def now(self) -> datetime:
        return utcnow()
