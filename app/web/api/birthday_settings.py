"""The shop's birthday settings: where the birth date is (a customer
metafield), when the greeting goes, and whether it carries a code."""

from __future__ import annotations

from sqlmodel import Session

from app.birthdays import reschedule_shop
from app.install import resubscribe_later
from app.models import Shop
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.schemas import BirthdaySettings, BirthdaySettingsChange

PATH = "/settings/birthdays"


def _settings(shop: Shop) -> BirthdaySettings:
    return BirthdaySettings.model_validate(shop, from_attributes=True)


@api.route("GET", PATH, response=BirthdaySettings)
def get_birthday_settings():
    """The birth-date metafield, the greeting's local hour, the discount."""
    with Session(runtime().engine) as session:
        return _settings(session.get(Shop, shop_id()))


@api.route("PATCH", PATH, body=BirthdaySettingsChange, response=BirthdaySettings)
def patch_birthday_settings(body: BirthdaySettingsChange):
    """Change the settings given. Another namespace re-subscribes the
    customer webhooks with it (a queued job: payloads carry only the
    namespaces a subscription names); another hour moves every greeting."""
    rt = runtime()
    with Session(rt.engine) as session:
        shop = session.get(Shop, shop_id())
        before = (shop.birth_date_namespace, shop.birthday_hour)
        for name, value in body.model_dump(exclude_unset=True).items():
            setattr(shop, name, value)
        session.add(shop)
        now = rt.clock.now()
        if shop.birth_date_namespace != before[0]:
            resubscribe_later(session, shop, now)
        if shop.birthday_hour != before[1]:
            reschedule_shop(session, shop, now)
        session.commit()
        return _settings(shop)
