"""Business days in the shop's calendar: weekends, holidays, time zones,
daylight-saving changes and the end of February."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.business_days import add_business_days, end_of_local_day, parse_holidays

MADRID = ZoneInfo("Europe/Madrid")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


def local(tz, *parts) -> datetime:
    return datetime(*parts, tzinfo=tz)


def test_a_friday_afternoon_plus_two_business_days_is_tuesday_afternoon():
    friday = local(MADRID, 2026, 11, 20, 15, 0)
    assert add_business_days(friday, 2, MADRID) == local(MADRID, 2026, 11, 24, 15, 0)


def test_a_weekend_start_counts_from_monday_whole():
    saturday = local(MADRID, 2026, 11, 21, 10, 0)
    # Monday and Tuesday are the two days: due when Tuesday is over.
    assert add_business_days(saturday, 2, MADRID) == local(MADRID, 2026, 11, 25, 0, 0)


def test_the_shops_holidays_do_not_count():
    holidays = parse_holidays("2026-12-24, 2026-12-25")
    wednesday = local(MADRID, 2026, 12, 23, 9, 0)
    assert add_business_days(wednesday, 1, MADRID, holidays) == local(MADRID, 2026, 12, 28, 9, 0)


def test_a_deadline_keeps_its_local_hour_across_the_spring_change():
    friday = local(MADRID, 2026, 3, 27, 15, 0)  # CET, UTC+1
    due = add_business_days(friday, 2, MADRID)
    assert due == local(MADRID, 2026, 3, 31, 15, 0)  # CEST, UTC+2
    assert due.astimezone(UTC).hour == 13


def test_a_deadline_keeps_its_local_hour_across_the_autumn_change_in_new_york():
    friday = local(NEW_YORK, 2026, 10, 30, 17, 30)  # EDT
    assert add_business_days(friday, 1, NEW_YORK).astimezone(UTC) == datetime(
        2026, 11, 2, 22, 30, tzinfo=UTC
    )  # Monday 17:30 EST


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2027, 2, 26), 1, date(2027, 3, 1)),  # Friday -> Monday 1 March
        (date(2028, 2, 28), 1, date(2028, 2, 29)),  # a leap year's Monday -> Tuesday 29th
        (date(2028, 2, 29), 1, date(2028, 3, 1)),
    ],
)
def test_the_end_of_february_in_common_and_leap_years(start, days, expected):
    moment = local(MADRID, start.year, start.month, start.day, 12, 0)
    assert add_business_days(moment, days, MADRID).date() == expected


def test_the_same_moment_is_a_weekday_in_one_zone_and_the_weekend_in_another():
    moment = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)  # Friday evening UTC: Saturday in Tokyo
    assert add_business_days(moment, 1, NEW_YORK).date() == date(2026, 11, 23)  # Monday
    assert add_business_days(moment, 1, TOKYO) == local(TOKYO, 2026, 11, 24, 0, 0)


def test_an_estimate_has_passed_only_once_its_local_day_is_over():
    estimate = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # already the 25th in Madrid
    assert end_of_local_day(estimate, MADRID) == local(MADRID, 2026, 11, 26, 0, 0)


def test_a_holiday_that_is_not_a_date_is_refused_with_its_text():
    with pytest.raises(ValueError, match="'25/12/2026'"):
        parse_holidays("2026-12-24,25/12/2026")
