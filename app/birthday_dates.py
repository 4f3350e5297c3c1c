"""When a customer's birthday greeting is due: pure date arithmetic, kept
apart from the sweep (`app.birthdays`) so that applying a customer's facts
can keep `Customer.next_birthday_at` current without knowing any rule.

The greeting goes at the shop's `birthday_hour` on the birthday, in the
customer's time zone (the shop's when the customer has none). 29 February
is greeted on 28 February in the years without one. An hour that does not
exist that day (a DST gap) is read as the clocks read it after the jump.
"""

from __future__ import annotations

from calendar import isleap
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.models import Customer, Shop
from notifications.policy import zone as zone_named


def birthday_in(year: int, birth: date) -> date:
    """The day the birthday is kept in `year`."""
    if (birth.month, birth.day) == (2, 29) and not isleap(year):
        return date(year, 2, 28)
    return date(year, birth.month, birth.day)


def next_greeting(birth: date, zone: ZoneInfo, hour: int, after: datetime) -> datetime:
    """The first greeting moment strictly after `after`, in UTC."""
    year = after.astimezone(zone).year
    this_year = _greeting(birthday_in(year, birth), zone, hour)
    # Next year's is always later: `after` is a moment of this local year.
    return this_year if this_year > after else _greeting(birthday_in(year + 1, birth), zone, hour)


def _greeting(day: date, zone: ZoneInfo, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(UTC)


def customer_zone(customer: Customer, shop: Shop) -> ZoneInfo:
    return zone_named(customer.timezone, shop.timezone)


def reschedule(customer: Customer, shop: Shop, now: datetime) -> None:
    """Set the customer's next greeting from their birth date and zone; the
    caller flushes. A birthday that is today stays due today, even past its
    hour (the sweep greets it at once; the outbox key, per year, keeps a
    greeting already sent from going twice)."""
    if customer.birth_date is None or customer.redacted_at is not None:
        customer.next_birthday_at = None
        return
    zone = customer_zone(customer, shop)
    local = now.astimezone(zone)
    start_of_today = datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)
    customer.next_birthday_at = next_greeting(
        customer.birth_date, zone, shop.birthday_hour, start_of_today - timedelta(microseconds=1)
    )
