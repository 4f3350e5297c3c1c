"""Settings: sender, language and time zone, quiet hours, frequency cap;
the providers a shop connects (fulfillment, helpdesk), the email and SMS
channels, and a test message. Changes go through the same validation as the
JSON API (`NotificationSettingsChange`, `app.providers.connect`)."""

from __future__ import annotations

import json
import re

from flask import g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from pydantic import ValidationError
from sqlalchemy import delete
from sqlmodel import Session, select

from app import notification_settings, providers
from app.delay_checks import change_delay_settings
from app.models import ProviderConnection, Shop
from app.sample_messages import SampleMessageError, queue_sample_message
from app.web.context import runtime
from app.web.pages.base import LANGUAGES, bp, check_csrf, signed_in
from app.web.schemas import DelaySettingsChange, NotificationSettingsChange

FIELDS = (
    "email_from", "sms_from", "locale", "timezone",
    "quiet_hours_start", "quiet_hours_end", "daily_message_cap",
)  # fmt: skip
TIMEZONES = sorted(notification_settings.TIME_ZONES)
# When an order counts as late (`app.delays`); the same as PATCH /api/v1/settings/delays.
DELAY_FIELDS = (
    "country", "processing_days", "transit_days", "transit_days_by_country",
    "stalled_days_home", "stalled_days_abroad", "not_shipped_grace_hours",
    "tracking_problem_hours", "holidays",
)  # fmt: skip
# "DE 3, FR 4": the transit days of the countries that differ from the rest.
_TRANSIT_ENTRY = re.compile(r"([A-Za-z]{2})\s*[:=]?\s*([0-9]{1,3})")


def _problem_words(error: dict) -> str:
    """A schema refusal in the merchant's words (and language) rather than
    pydantic's ("Input should be greater than or equal to 24")."""
    context = error.get("ctx") or {}
    match error["type"]:
        case "greater_than_equal":
            return _("at least %(n)s", n=context["ge"])
        case "less_than_equal":
            return _("at most %(n)s", n=context["le"])
        case "int_parsing" | "int_type" | "int_from_float":
            return _("a whole number")
        case "date_parsing" | "date_from_datetime_parsing" | "date_type":
            return _("dates such as 2026-12-25")
        case "too_long":
            return _("too many entries")
    return error["msg"].removeprefix("Value error, ")


def _form_problems(exc: ValidationError) -> dict[str, str]:
    return {str(e["loc"][0]): _problem_words(e) for e in exc.errors()}


def _transit_by_country(text: str) -> dict[str, int] | str:
    """The form's "DE 3, FR 4" as {"DE": 3, "FR": 4}, or the entry that is
    not of that shape."""
    found: dict[str, int] = {}
    for entry in (e.strip() for e in re.split(r"[,;\n]+", text)):
        if not entry:
            continue
        match = _TRANSIT_ENTRY.fullmatch(entry)
        if match is None:
            return entry
        found[match[1].upper()] = int(match[2])
    return found


def _channels() -> dict[str, str | None]:
    """How this server sends each channel (configured per deployment)."""
    s = runtime().settings
    email = (
        f"SMTP ({s.smtp_host})" if s.smtp_host else "Postmark" if s.postmark_server_token else None
    )
    sms = "Twilio" if s.twilio_account_sid and s.twilio_auth_token else None
    fallback = "folder" if s.without_provider == "folder" else None
    return {"email": email or fallback, "sms": sms or fallback}


def _page(status: int = 200, **extra):
    with Session(runtime().engine) as db:
        connections = db.exec(
            select(ProviderConnection)
            .where(ProviderConnection.shop_id == g.shop.id)
            .order_by(ProviderConnection.kind, ProviderConnection.provider)
        ).all()
    values = {name: getattr(g.shop, name) for name in FIELDS + DELAY_FIELDS}
    values["holidays"] = ", ".join((g.shop.holidays or "").split(","))
    transit = json.loads(g.shop.transit_days_by_country or "{}")
    values["transit_days_by_country"] = ", ".join(f"{c} {d}" for c, d in sorted(transit.items()))
    values |= extra.pop("values", {})  # what was sent, when it is shown again
    return render_template(
        "app/settings.html",
        shop=g.shop,
        values=values,
        errors=extra.pop("errors", {}),
        languages=LANGUAGES,
        timezones=TIMEZONES,
        connections=connections,
        by_kind=providers.BY_KIND,
        channels=_channels(),
        **extra,
    ), status


@bp.get("/settings")
@signed_in
def settings():
    return _page(saved=request.args.get("saved") == "1")


@bp.post("/settings")
@signed_in
def settings_submit():
    check_csrf()
    form = {name: request.form.get(name, "").strip() for name in FIELDS}
    change = {name: value for name, value in form.items() if value}
    for sender in ("email_from", "sms_from"):  # an emptied sender is cleared
        if not form[sender]:
            change[sender] = None
    cap = change.get("daily_message_cap")
    if isinstance(cap, str) and cap.isascii() and cap.isdigit() and len(cap) < 4:
        change["daily_message_cap"] = int(cap)  # otherwise the schema says what is wrong
    try:
        valid = NotificationSettingsChange.model_validate(change)
    except ValidationError as exc:
        return _page(400, values=form, errors=_form_problems(exc))
    rt = runtime()
    try:
        with Session(rt.engine) as db:
            shop = db.get(Shop, g.shop.id)
            notification_settings.change(
                db, shop, valid.model_dump(exclude_unset=True), rt.clock.now()
            )
            db.commit()
    except notification_settings.SettingsProblem as problem:
        return _page(400, values=form, errors={problem.field: problem.reason})
    return redirect(url_for("pages.settings", saved="1"))


@bp.post("/settings/delays")
@signed_in
def delay_settings_submit():
    check_csrf()
    form = {name: request.form.get(name, "").strip() for name in DELAY_FIELDS}
    lists = ("holidays", "transit_days_by_country")
    change: dict = {name: value for name, value in form.items() if value and name not in lists}
    for name, value in change.items():
        if value.isascii() and value.isdigit() and len(value) < 5:
            change[name] = int(value)  # otherwise the schema says what is wrong
    change["holidays"] = [day for day in re.split(r"[\s,]+", form["holidays"]) if day]
    transit = _transit_by_country(form["transit_days_by_country"])
    if isinstance(transit, str):
        problem = _("“%(entry)s” is not a country code and days, such as DE 3", entry=transit[:40])
        return _page(400, values=form, errors={"transit_days_by_country": problem})
    change["transit_days_by_country"] = transit
    try:
        valid = DelaySettingsChange.model_validate(change)
    except ValidationError as exc:
        return _page(400, values=form, errors=_form_problems(exc))
    rt = runtime()
    with Session(rt.engine) as db:
        shop = db.get(Shop, g.shop.id)
        change_delay_settings(db, shop, valid.model_dump(exclude_unset=True), rt.clock.now())
        db.commit()
    return redirect(url_for("pages.settings", saved="1"))


@bp.post("/settings/providers")
@signed_in
def provider_connect():
    """Connect a provider: the webhook URL to paste into it is shown once."""
    check_csrf()
    kind, name = request.form.get("kind", ""), request.form.get("provider", "")
    if providers.provider(kind, name) is None:
        return _page(400, provider_error=_("Choose a provider from the list."))
    rt = runtime()
    with Session(rt.engine) as db:
        try:
            issued = providers.connect(
                db, rt.secrets, g.shop.id, name, request.form.get("secret"), rt.clock.now()
            )
        except providers.ProviderConfigError as exc:
            return _page(422, provider_error=str(exc))
        db.commit()
    url = providers.webhook_url(rt.settings.public_url, name, issued.url_key)
    return _page(201, issued={"provider": name, "kind": kind, "url": url})


@bp.post("/settings/providers/<provider>/disconnect")
@signed_in
def provider_disconnect(provider: str):
    check_csrf()
    with Session(runtime().engine) as db:
        db.exec(
            delete(ProviderConnection).where(
                ProviderConnection.shop_id == g.shop.id, ProviderConnection.provider == provider
            )
        )
        db.commit()
    return redirect(url_for("pages.settings"))


@bp.post("/settings/test-message")
@signed_in
def send_test_message():
    check_csrf()
    rt = runtime()
    channel = request.form.get("channel", "")
    with Session(rt.engine) as db:
        try:
            recipient = queue_sample_message(
                db, g.shop, channel, request.form.get("recipient", ""), rt.clock.now()
            )
        except SampleMessageError as exc:
            return _page(400, test_error=str(exc))
        db.commit()
    rt.inbox_wakeup.set()  # an in-process worker sends it at once
    return _page(test_sent=recipient)
