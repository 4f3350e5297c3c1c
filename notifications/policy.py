"""Who may be told what, on which channel, and when: plain functions over
plain data, so that consent, quiet hours and the frequency cap can be tested
without a database or a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TRANSACTIONAL = "transactional"  # about an order the customer placed: shipping, delay, survey
MARKETING = "marketing"  # needs marketing consent for the channel: birthday
# Marketing consent states as Shopify reports them (lower case in webhooks).
CONSENTED = {"subscribed"}
QUIET_CHANNELS = {"sms"}  # a text at night wakes people; an email waits in the inbox
CAP_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Reachability:
    """What we know about reaching one customer on one channel."""

    channel: str
    address: str | None  # email, or phone already in E.164
    marketing_consent: str | None
    opted_out: bool


@dataclass(frozen=True)
class Choice:
    channel: str | None
    address: str | None
    reason: str | None = None  # why nobody could be reached, when channel is None


def choose_channel(preferences: list[str], options: list[Reachability], category: str) -> Choice:
    """The first channel in the rule's preference order the customer can
    receive on; otherwise the reasons each channel was refused."""
    by_channel = {option.channel: option for option in options}
    reasons = []
    for channel in preferences:
        option = by_channel.get(channel)
        if option is None or not option.address:
            reasons.append(f"{channel}: no address")
        elif refusal := may_send(option, category):
            reasons.append(refusal)
        else:
            return Choice(channel, option.address)
    return Choice(None, None, "; ".join(reasons) or "no channel configured")


def may_send(option: Reachability, category: str) -> str | None:
    """Checked again just before sending (consent may have changed since the
    message was queued): None if it may go, else the reason it may not."""
    if option.opted_out:
        return f"{option.channel}: unsubscribed"
    if category == MARKETING and (option.marketing_consent or "").lower() not in CONSENTED:
        return f"{option.channel}: no marketing consent"
    return None


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def parse_clock(value: str) -> time:
    """ "21:00" -> time(21, 0); raises ValueError for anything else."""
    if not re.fullmatch(r"[0-9]{1,2}:[0-9]{2}", value):  # ASCII digits only, not full-width ones
        raise ValueError(f"expected HH:MM, not {value!r}")
    hours, minutes = (int(part) for part in value.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"expected a time of day from 00:00 to 23:59, not {value!r}")
    return time(hours, minutes)


def quiet_until(now: datetime, tz: ZoneInfo, start: time, end: time) -> datetime | None:
    """If `now` falls in the quiet hours of `tz`, the UTC moment they end.

    Local wall-clock times, so the window follows daylight saving changes;
    a window may cross midnight (21:00-08:00) or not (13:00-14:00).
    """
    local = now.astimezone(tz)
    today = local.date()
    if start == end:
        return None
    if start < end:
        inside = start <= local.time() < end
        end_day = today
    else:
        inside = local.time() >= start or local.time() < end
        end_day = today + timedelta(days=1) if local.time() >= start else today
    if not inside:
        return None
    # fold=0 and ZoneInfo resolve a wall time that does not exist (spring
    # forward) to the moment after the gap, which is what we want.
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)


def cap_until(sent_at: list[datetime], cap: int, now: datetime) -> datetime | None:
    """If `cap` messages already went in the last 24 hours, when the next may."""
    recent = sorted(moment for moment in sent_at if moment > now - CAP_WINDOW)
    if len(recent) < cap:
        return None
    return recent[len(recent) - cap] + CAP_WINDOW
