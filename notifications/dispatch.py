"""One worker step for the outbox: claim a batch, check each message once
more against consent, quiet hours and the frequency cap, render it, send it
through the channel's provider, and record what happened."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from jinja2 import TemplateError
from sqlalchemy import func
from sqlmodel import Session, select

from app.factory import Runtime
from app.models import Customer, Notification, Shop, TemplateOverride
from notifications import outbox, policy, rendering
from notifications.email import new_message_id
from notifications.messages import EmailMessage, Outcome, SendResult, SmsMessage
from notifications.phone import segments
from notifications.transports import Transports
from notifications.unsubscribe import unsubscribe_url

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    notification: Notification
    message: EmailMessage | SmsMessage
    segments: int | None = None


def dispatch_batch(rt: Runtime, transports: Transports) -> int:
    """Claim, send and record one batch; returns how many were claimed."""
    settings = rt.settings
    batch = outbox.claim(
        rt.engine, rt.clock.now(), settings.outbox_batch_size,
        timedelta(seconds=settings.outbox_lease_seconds),
    )  # fmt: skip
    if not batch:
        return 0
    with Session(rt.engine) as session:
        prepared = [p for n in batch if (p := _prepare(session, rt, n)) is not None]
        session.commit()

    emails = [p for p in prepared if p.notification.channel == "email"]
    results: list[tuple[Prepared, SendResult]] = []
    if emails:
        sent = transports.email.send_batch([p.message for p in emails])
        results += list(zip(emails, sent, strict=True))
    results += [
        (p, transports.sms.send(p.message)) for p in prepared if p.notification.channel == "sms"
    ]

    with Session(rt.engine) as session:
        now = rt.clock.now()
        for item, result in results:
            provider = (
                transports.email.name
                if item.notification.channel == "email"
                else transports.sms.name
            )
            _record(session, item, result, provider, now, settings.outbox_max_attempts)
        session.commit()
    return len(batch)


def _prepare(session: Session, rt: Runtime, notification: Notification) -> Prepared | None:
    """The message to send, or None after suppressing or deferring it."""
    now = rt.clock.now()
    shop = session.get(Shop, notification.shop_id)
    customer = session.get(Customer, notification.customer_id) if notification.customer_id else None
    if shop is None or shop.uninstalled_at is not None:
        outbox.transition(session, notification, outbox.SUPPRESSED, now, "the shop uninstalled")
        return None
    if notification.attempts > rt.settings.outbox_max_attempts:
        # Claimed again and again without a result: its sending kills workers.
        outbox.transition(session, notification, outbox.DEAD, now, "never finished sending")
        return None
    consent = getattr(customer, f"{notification.channel}_consent", None) if customer else None
    refusal = policy.may_send(
        policy.Reachability(
            notification.channel, notification.recipient, consent,
            outbox.opted_out(session, shop.id, notification.channel, notification.recipient),
        ),
        notification.category,
    )  # fmt: skip
    if refusal:
        outbox.transition(session, notification, outbox.SUPPRESSED, now, refusal)
        return None

    tz = policy.zone(customer.timezone if customer else None, shop.timezone)
    if notification.channel in policy.QUIET_CHANNELS:
        until = policy.quiet_until(
            now,
            tz,
            policy.parse_clock(shop.quiet_hours_start),
            policy.parse_clock(shop.quiet_hours_end),
        )
        if until:
            outbox.defer(
                session, notification, until, f"quiet hours until {until.isoformat()}", now
            )
            return None
    if notification.customer_id:
        recent = session.exec(
            select(Notification.sent_at).where(
                Notification.shop_id == shop.id,
                Notification.customer_id == notification.customer_id,
                Notification.sent_at > now - policy.CAP_WINDOW,
            )
        ).all()
        until = policy.cap_until(list(recent), shop.daily_message_cap, now)
        if until:
            outbox.defer(session, notification, until, "frequency cap reached", now)
            return None

    context = _revive(json.loads(notification.context)) | {"shop_name": shop.name}
    if notification.category == policy.MARKETING:
        context["unsubscribe_url"] = unsubscribe_url(
            rt.settings, shop.id, notification.channel, notification.recipient
        )
    try:
        rendered = _render(session, shop, notification, context)
    except TemplateError as exc:
        outbox.transition(session, notification, outbox.FAILED, now, f"template error: {exc}")
        return None
    if notification.channel == "email":
        sender = shop.email_from or rt.settings.email_from
        headers = {}
        if context.get("unsubscribe_url"):
            headers = {
                "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        message = EmailMessage(
            message_id=new_message_id(sender.rpartition("@")[2] or "careloop.invalid"),
            sender=sender, sender_name=shop.name, to=notification.recipient,
            subject=rendered.subject or shop.name, html=rendered.html or "", text=rendered.text,
            headers=headers,
        )  # fmt: skip
        return Prepared(notification, message)
    callback = (
        f"{rt.settings.public_url}/webhooks/twilio/status"
        if rt.settings.twilio_account_sid
        else None
    )
    body = rendered.text.strip()
    message = SmsMessage(
        to=notification.recipient,
        sender=shop.sms_from or rt.settings.twilio_from or "CareLoop",
        body=body,
        status_callback=callback,
    )
    return Prepared(notification, message, segments(body)[1])


def _render(session: Session, shop: Shop, notification: Notification, context: dict):
    """The shop's own template when it has one for this message; ours if it
    has none, or if its own cannot render (saved templates are validated, so
    that is a bug worth a log line, not a lost message)."""
    override = session.exec(
        select(TemplateOverride)
        .where(
            TemplateOverride.shop_id == shop.id,
            TemplateOverride.kind == notification.kind,
            TemplateOverride.channel == notification.channel,
            TemplateOverride.locale.in_(_locale_chain(notification.locale)),
        )
        .order_by(func.length(TemplateOverride.locale).desc())
    ).first()
    source = (
        rendering.TemplateSource(override.subject, override.html, override.text)
        if override
        else None
    )
    try:
        return rendering.render(
            notification.kind, notification.channel, notification.locale, context,
            shop_locale=shop.locale, override=source,
        )  # fmt: skip
    except TemplateError as exc:
        if source is None:
            raise
        log.error("shop %s: its %s template failed (%s); using ours", shop.id, notification.kind,
                  type(exc).__name__)  # fmt: skip
        return rendering.render(
            notification.kind, notification.channel, notification.locale, context,
            shop_locale=shop.locale,
        )  # fmt: skip


def _revive(context: dict) -> dict:
    """Dates and amounts were stored as text in the context JSON."""
    if context.get("estimated_delivery"):
        context["estimated_delivery"] = datetime.fromisoformat(context["estimated_delivery"])
    if context.get("total") is not None:
        context["total"] = Decimal(str(context["total"]))
    return context


def _locale_chain(locale: str) -> list[str]:
    base = locale.split("-")[0]
    return [locale, base] if base != locale else [locale]


def _record(
    session: Session, item: Prepared, result: SendResult, provider: str, now: datetime,
    max_attempts: int,
) -> None:  # fmt: skip
    notification = item.notification
    if result.outcome == Outcome.SENT:
        outbox.transition(
            session, notification, outbox.SENT, now, None,
            provider=provider, provider_message_id=result.provider_id, sent_at=now,
            segments=item.segments, lease_until=None,
        )  # fmt: skip
    elif result.outcome == Outcome.PERMANENT:
        detail = " ".join(filter(None, [result.error_code, result.reason])) or "refused"
        outbox.transition(
            session, notification, outbox.FAILED, now, detail, provider=provider, lease_until=None
        )
        if result.unsubscribed:
            outbox.opt_out(
                session, notification.shop_id, notification.channel, notification.recipient,
                f"{provider}: {result.error_code or 'unsubscribed'}", now,
            )  # fmt: skip
    else:
        outbox.retry_later(session, notification, result.reason or "temporary failure", now,
                           max_attempts)  # fmt: skip
