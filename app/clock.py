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
    """Parse an ISO-8601 timestamp as Shopify sends it (offset included)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 timestamp, got {value!r}")
    return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


class Clock:
    def now(self) -> datetime:
        return utcnow()
