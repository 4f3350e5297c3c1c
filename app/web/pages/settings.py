"""Settings: sender, language and time zone, quiet hours, frequency cap;
the providers a shop connects (fulfillment, helpdesk), the email and SMS
channels, and a test message. Changes go through the same validation as the
JSON API (`NotificationSettingsChange`, `app.providers.connect`)."""

from __future__ import annotations

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
    "country", "processing_days", "transit_days", "stalled_days_home", "stalled_days_abroad",
    "not_shipped_grace_hours", "tracking_problem_hours", "holidays",
)  # fmt: skip


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
        errors = {str(e["loc"][0]): e["msg"].removeprefix("Value error, ") for e in exc.errors()}
        return _page(400, values=form, errors=errors)
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
    change: dict = {name: value for name, value in form.items() if value and name != "holidays"}
    for name, value in change.items():
        if value.isascii() and value.isdigit() and len(value) < 5:
            change[name] = int(value)  # otherwise the schema says what is wrong
    change["holidays"] = [day for day in re.split(r"[\s,]+", form["holidays"]) if day]
    try:
        valid = DelaySettingsChange.model_validate(change)
    except ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"].removeprefix("Value error, ") for e in exc.errors()}
        return _page(400, values=form, errors=errors)
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
