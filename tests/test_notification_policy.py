"""Consent, channel choice, quiet hours and the frequency cap, as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifications.policy import (
    MARKETING,
    TRANSACTIONAL,
    Reachability,
    cap_until,
    choose_channel,
    may_send,
    parse_clock,
    quiet_until,
    zone,
)

EMAIL = Reachability("email", "ana@example.com", "subscribed", False)
SMS = Reachability("sms", "+34612345678", None, False)
NIGHT = (time(21, 0), time(8, 0))


def test_the_first_preferred_channel_the_customer_can_receive_wins():
    assert choose_channel(["sms", "email"], [EMAIL, SMS], TRANSACTIONAL).channel == "sms"
    no_phone = Reachability("sms", None, None, False)
    choice = choose_channel(["sms", "email"], [EMAIL, no_phone], TRANSACTIONAL)
    assert (choice.channel, choice.address) == ("email", "ana@example.com")


def test_marketing_needs_consent_for_that_channel():
    choice = choose_channel(["sms", "email"], [EMAIL, SMS], MARKETING)
    assert choice.channel == "email"  # SMS consent unknown: not asked
    unsubscribed = Reachability("email", "ana@example.com", "unsubscribed", False)
    nobody = choose_channel(["email", "sms"], [unsubscribed, SMS], MARKETING)
    assert nobody.channel is None
    assert nobody.reason == "email: no marketing consent; sms: no marketing consent"


def test_an_opt_out_closes_the_channel_even_for_transactional_messages():
    stopped = Reachability("sms", "+34612345678", "subscribed", True)
    assert choose_channel(["sms"], [stopped], TRANSACTIONAL).reason == "sms: unsubscribed"
    assert may_send(stopped, TRANSACTIONAL) == "sms: unsubscribed"
    assert may_send(SMS, TRANSACTIONAL) is None


def test_quiet_hours_defer_to_the_morning_in_the_customers_time_zone():
    madrid = ZoneInfo("Europe/Madrid")
    late = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 23:30 in Madrid
    assert quiet_until(late, madrid, *NIGHT) == datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
    early = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)  # 06:00 in Madrid
    assert quiet_until(early, madrid, *NIGHT) == datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
    afternoon = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    assert quiet_until(afternoon, madrid, *NIGHT) is None


def test_the_same_moment_is_quiet_in_one_zone_and_not_in_another():
    moment = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    assert quiet_until(moment, ZoneInfo("Europe/Moscow"), *NIGHT) is not None  # 06:00
    assert quiet_until(moment, ZoneInfo("America/Los_Angeles"), *NIGHT) is None  # 19:00


@pytest.mark.parametrize(
    ("now", "expected_end"),
    [
        # The night clocks go back (Europe/Madrid, 2026-10-25 03:00 -> 02:00):
        # 08:00 local is then UTC+1, one hour later in UTC than the day before.
        (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        # The night clocks go forward (2026-03-29 02:00 -> 03:00): 08:00 is UTC+2.
        (datetime(2026, 3, 28, 22, 0, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
    ],
)
def test_quiet_hours_follow_daylight_saving_changes(now, expected_end):
    assert quiet_until(now, ZoneInfo("Europe/Madrid"), *NIGHT) == expected_end


def test_a_window_within_one_day_is_honoured():
    lunch = (time(13, 0), time(14, 0))
    utc = ZoneInfo("UTC")
    assert quiet_until(datetime(2026, 1, 1, 13, 30, tzinfo=UTC), utc, *lunch) == datetime(
        2026, 1, 1, 14, 0, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 1, 1, 15, 0, tzinfo=UTC), utc, *lunch) is None


def test_unknown_time_zone_falls_back_to_the_shop_then_utc():
    assert zone("Mars/Olympus", "Europe/Madrid") == ZoneInfo("Europe/Madrid")
    assert zone(None, "Nowhere/Else") == ZoneInfo("UTC")


@pytest.mark.parametrize("value", ["9pm", "21", "21:0", "", "ab:cd"])
def test_clock_settings_must_be_hh_mm(value):
    with pytest.raises(ValueError):
        parse_clock(value)


def test_frequency_cap_defers_until_the_oldest_message_leaves_the_window():
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    sent = [now - timedelta(hours=h) for h in (1, 5, 20, 30)]  # 3 in the last 24 h
    assert cap_until(sent, 4, now) is None
    assert cap_until(sent, 3, now) == now - timedelta(hours=20) + timedelta(hours=24)
    assert cap_until(sent, 2, now) == now - timedelta(hours=5) + timedelta(hours=24)
