"""The shop's notification settings: senders, quiet hours, cap, time zone."""

from __future__ import annotations

from sqlmodel import Session

from app.birthdays import reschedule_shop
from app.models import Shop
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.schemas import NotificationSettings, NotificationSettingsChange

PATH = "/settings/notifications"


def _settings(shop: Shop) -> NotificationSettings:
    return NotificationSettings.model_validate(shop, from_attributes=True)


@api.route("GET", PATH, response=NotificationSettings)
def get_notification_settings():
    """Who messages come from, and when and how often they may go."""
    with Session(runtime().engine) as session:
        return _settings(session.get(Shop, shop_id()))


@api.route("PATCH", PATH, body=NotificationSettingsChange, response=NotificationSettings)
def patch_notification_settings(body: NotificationSettingsChange):
    """Change the settings given; the others stay as they are."""
    with Session(runtime().engine) as session:
        shop = session.get(Shop, shop_id())
        timezone = shop.timezone
        for name, value in body.model_dump(exclude_unset=True).items():
            setattr(shop, name, value)
        session.add(shop)
        if shop.timezone != timezone:  # the fallback zone of birthday greetings
            reschedule_shop(session, shop, runtime().clock.now())
        session.commit()
        return _settings(shop)
