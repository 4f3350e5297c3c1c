"""The shop's settings: notifications (senders, quiet hours, cap, time
zone) and delays (what the shop promises, when silence is news)."""

from __future__ import annotations

import json

from sqlmodel import Session

from app import notification_settings
from app.business_days import parse_holidays
from app.delay_checks import change_delay_settings
from app.models import Shop
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import refused
from app.web.schemas import (
    DelaySettings,
    DelaySettingsChange,
    NotificationSettings,
    NotificationSettingsChange,
)

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
        try:
            notification_settings.change(
                session, shop, body.model_dump(exclude_unset=True), runtime().clock.now()
            )
        except notification_settings.SettingsProblem as problem:
            return refused("invalid_settings", problem.field, problem.reason)
        session.commit()
        return _settings(shop)


DELAYS = "/settings/delays"


def _delays(shop: Shop) -> DelaySettings:
    return DelaySettings(
        country=shop.country, processing_days=shop.processing_days,
        transit_days=shop.transit_days,
        transit_days_by_country=json.loads(shop.transit_days_by_country or "{}"),
        stalled_days_home=shop.stalled_days_home, stalled_days_abroad=shop.stalled_days_abroad,
        not_shipped_grace_hours=shop.not_shipped_grace_hours,
        tracking_problem_hours=shop.tracking_problem_hours,
        holidays=sorted(parse_holidays(shop.holidays or "")),
    )  # fmt: skip


@api.route("GET", DELAYS, response=DelaySettings)
def get_delay_settings():
    """When an order counts as late: promise, transit, stalled, grace, holidays."""
    with Session(runtime().engine) as session:
        return _delays(session.get(Shop, shop_id()))


@api.route("PATCH", DELAYS, body=DelaySettingsChange, response=DelaySettings)
def patch_delay_settings(body: DelaySettingsChange):
    """Change the settings given; every open order is checked again with
    them at the next sweep."""
    rt = runtime()
    with Session(rt.engine) as session:
        shop = session.get(Shop, shop_id())
        change_delay_settings(session, shop, body.model_dump(exclude_unset=True), rt.clock.now())
        session.commit()
        return _delays(shop)
