"""Business-day arithmetic in a shop's calendar: pure functions, no clock.

A promise such as "ships within 2 business days" or "stalled after 3
business days without a scan" is counted on the shop's local calendar:
weekends and the shop's holidays do not count, and the result keeps the
local wall-clock time, so that a deadline set at 15:00 stays at 15:00 across
a daylight-saving change (it is then one hour more or less in UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

WEEKEND = frozenset({5, 6})  # Saturday, Sunday (date.weekday())


def parse_holidays(text: str) -> frozenset[date]:
    """ "2026-12-25,2027-01-01" -> dates; raises ValueError naming a bad one."""
    days = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            days.add(date.fromisoformat(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a date written YYYY-MM-DD") from None
    return frozenset(days)


def is_business_day(day: date, holidays: Iterable[date] = ()) -> bool:
    return day.weekday() not in WEEKEND and day not in holidays


def _local(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC moment of a local wall time; a time skipped by a spring
    change resolves to the moment after the gap (zoneinfo's fold=0)."""
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def add_business_days(
    start: datetime, days: int, tz: ZoneInfo, holidays: frozenset[date] = frozenset()
) -> datetime:
    """The moment `days` business days after `start`, at the same local time.

    A start on a weekend or a holiday counts from the next business day's
    beginning: an order placed on Saturday with 2 days to ship is due at
    the end of Tuesday (Monday and Tuesday are the two days), not Monday
    afternoon. Zero days is `start` itself.
    """
    if days <= 0:
        return start
    local = start.astimezone(tz)
    day, whole = _business_days_after(local.date(), days, holidays)
    if whole:
        return _local(day + timedelta(days=1), time.min, tz)
    return _local(day, local.time().replace(tzinfo=None), tz)


@lru_cache(maxsize=4096)
def _business_days_after(day: date, days: int, holidays: frozenset[date]) -> tuple[date, bool]:
    """The date `days` business days after `day`, and whether the count
    began on a closed day (so the last day counts whole). Cached: a sweep
    counts from the same few placing dates for thousands of orders."""
    whole = not is_business_day(day, holidays)
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day, holidays):
            counted += 1
    return day, whole


def end_of_local_day(moment: datetime, tz: ZoneInfo) -> datetime:
    """The first moment of the local day after `moment`'s: an estimate "for
    Friday" has passed only once Friday is over where the shop is."""
    day = moment.astimezone(tz).date() + timedelta(days=1)
    return _local(day, time.min, tz)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()
