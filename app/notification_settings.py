"""A shop's notification settings changed (the API's PATCH and the settings
page alike): applied whole or not at all, with what follows from them.

The schema (`app.web.schemas.NotificationSettingsChange`) checks each value
alone; what only the values together decide is checked here, against the
shop's current settings for whatever the change leaves out.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import available_timezones

from sqlmodel import Session

from app.birthdays import reschedule_shop
from app.models import Shop

# The IANA zones a shop may be in: places ("Europe/Madrid", and the older
# "US/Eastern" links to them) and UTC. Not the system's files ("localtime"
# is whatever this machine is set to, "Factory" no place at all), not
# fixed offsets named as places ("EST" ignores daylight saving, and
# "Etc/GMT+5" is five hours *behind* GMT).
TIME_ZONES = frozenset(
    zone for zone in available_timezones()
    if zone == "UTC"
    or ("/" in zone and not zone.startswith(("posix/", "right/", "Etc/", "SystemV/")))
)  # fmt: skip


class SettingsProblem(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def change(session: Session, shop: Shop, values: dict, now: datetime) -> None:
    """Apply validated settings to `shop`, or raise SettingsProblem and
    change nothing. A new time zone moves the birthday greetings that fall
    back to it. The caller commits."""
    start = values.get("quiet_hours_start", shop.quiet_hours_start)
    end = values.get("quiet_hours_end", shop.quiet_hours_end)
    if start == end:
        field = "quiet_hours_end" if "quiet_hours_end" in values else "quiet_hours_start"
        raise SettingsProblem(field, "the quiet hours must end at another time than they start")
    timezone = shop.timezone
    for name, value in values.items():
        setattr(shop, name, value)
    session.add(shop)
    if shop.timezone != timezone:
        reschedule_shop(session, shop, now)
