"""One worker step for the outbox: claim a batch, check each message once
more against consent, quiet hours and the frequency cap, render it, send it
through the channel's provider, and record what happened.

Everything a batch needs from the database is read in a handful of queries
for the whole batch, and the results are written back in bulk: per message,
the cost is the rendering and the provider's round trip.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from jinja2 import TemplateError
from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.clock import Clock
from app.config import Settings
from app.models import (
    ChannelOptOut,
    Customer,
    Notification,
    Order,
    Shipment,
    Shop,
    TemplateOverride,
)
from notifications import outbox, policy, rendering, truth
from notifications.email import message_id_for
from notifications.messages import EmailMessage, Outcome, SendResult, SmsMessage
from notifications.phone import segments
from notifications.rendering import locale_chain
from notifications.transports import Transports
from notifications.unsubscribe import unsubscribe_url

log = logging.getLogger(__name__)
# A message for a channel without a provider is looked at again this often
# (a provider configured meanwhile takes effect when the worker restarts).
NO_PROVIDER_RECHECK = timedelta(hours=1)


class Runtime(Protocol):
    """What sending needs from a process: `app.runtime.Runtime` is one. A
    protocol, so that notifications do not depend on the app's runtime (and,
    through it, on the outside systems' clients)."""

    settings: Settings
    engine: Engine
    clock: Clock


@dataclass
class Prepared:
    notification: Notification
    message: EmailMessage | SmsMessage
    segments: int | None = None


@dataclass
class BatchFacts:
    """What the checks and the rendering need, read once for the batch."""

    shops: dict[int, Shop]
    customers: dict[int, Customer]
    opted_out: set[tuple[int, str, str]]
    # Sends that count against each customer's cap: those already made in
    # the window, plus the ones this batch is about to make.
    sends: dict[tuple[int, int], list[datetime]]
    overrides: dict[tuple[int, str, str, str], TemplateOverride]
    orders: dict[int, Order] = field(default_factory=dict)
    # The parcel each message is about, as it is now (by tracking number).
    shipments: dict[tuple[int, str], Shipment] = field(default_factory=dict)
    changes: list[dict] = field(default_factory=list)


# Why a message of this kind about this order must not leave now, or None.
# The rules that queue messages know when each stops being true
# (`app.rules.no_longer_true`); the worker passes that in, so that sending
# knows no order states.
StaleCheck = Callable[[str, Order | None], str | None]
# What the rules record once a message of theirs has left, or never will
# (`app.rules.settled`: a delay is told when its message leaves), in the
# transaction that records it: (the message, its new status, when).
Settled = Callable[[Session, list[tuple[Notification, str, datetime]]], None]
FINAL = frozenset({outbox.SENT, outbox.FAILED, outbox.DEAD, outbox.SUPPRESSED})


def dispatch_batch(
    rt: Runtime, transports: Transports, no_longer_true: StaleCheck,
    settled: Settled | None = None,
) -> int:  # fmt: skip
    """Claim, send and record one batch; returns how many were claimed."""
    settings = rt.settings
    now = rt.clock.now()
    batch = outbox.claim(
        rt.engine, now, settings.outbox_batch_size, timedelta(seconds=settings.outbox_lease_seconds)
    )
    if not batch:
        return 0
    with Session(rt.engine, expire_on_commit=False) as session:
        facts = _load(session, batch, now)
        prepared = []
        for notification in batch:
            missing = transports.missing(notification.channel)
            if missing:
                # Never "sent" anywhere: it waits, with the reason, for a provider.
                facts.changes.append(
                    outbox.deferred(notification, now + NO_PROVIDER_RECHECK, missing, now)
                )
                continue
            try:
                item = _prepare(rt, facts, notification, now, no_longer_true)
            except Exception as exc:  # recorded on the row, never swallowed
                # This message cannot be made (a bad address, a missing or
                # broken template, a stored context we cannot read): it fails
                # alone, visibly, and the batch goes on.
                facts.changes.append(
                    _not_made(notification, exc, now, settings.outbox_max_attempts)
                )
                continue
            if item is not None:
                prepared.append(item)
        _record(session, batch, facts.changes, settled)
        session.commit()

    results = _send(transports, prepared)

    with Session(rt.engine) as session:
        now = rt.clock.now()
        ours = outbox.still_ours(session, [item.notification for item, _, _ in results])
        changes = []
        for item, result, provider in results:
            if item.notification.id not in ours:
                log.warning("notification %s: lease lost while sending; its new holder records it",
                            item.notification.id)  # fmt: skip
                continue
            changes.append(
                _outcome(session, item, result, provider, now, settings.outbox_max_attempts)
            )
        _record(session, batch, changes, settled)
        session.commit()
    return len(batch)


def _record(
    session: Session, batch: list[Notification], changes: list[dict], settled: Settled | None
) -> None:
    """Record the batch's changes, and tell the rules which messages settled."""
    outbox.record_events(session, changes)
    if settled is None:
        return
    by_id = {n.id: n for n in batch}
    final = [(by_id[c["id"]], c["status"], c["at"]) for c in changes if c["status"] in FINAL]
    if final:
        settled(session, final)


def _send(
    transports: Transports, prepared: list[Prepared]
) -> list[tuple[Prepared, SendResult, str]]:
    """Emails in one batch (one connection), texts one by one. A provider
    raises only for a bug (`EmailProvider.send_batch`); then each email of
    the batch is sent alone, so that one message that breaks it fails alone."""
    emails = [p for p in prepared if p.notification.channel == "email"]
    results: list[tuple[Prepared, SendResult, str]] = []
    if emails:
        email = transports.email
        try:
            sent = email.send_batch([p.message for p in emails])
        except Exception:  # logged with its traceback; each message gets its own result
            log.exception("%s: a batch of %d emails failed; sending each alone", email.name,
                          len(emails))  # fmt: skip
            sent = [_alone(lambda p=p: email.send_batch([p.message])[0]) for p in emails]
        results += [(p, r, email.name) for p, r in zip(emails, sent, strict=True)]
    sms = transports.sms
    for item in prepared:
        if item.notification.channel == "sms":
            results.append((item, _alone(lambda item=item: sms.send(item.message)), sms.name))
    return results


def _alone(send: Callable[[], SendResult]) -> SendResult:
    """One message's send, whatever it raises: a message the provider cannot
    take as it is fails for good, anything else is tried again later."""
    try:
        return send()
    except ValueError as exc:
        return SendResult(Outcome.PERMANENT, reason=f"cannot send: {exc}"[:500])
    except Exception as exc:  # a bug or a fault: logged, and retried with backoff
        log.exception("sending one message failed")
        return SendResult(Outcome.TRANSIENT, reason=f"{type(exc).__name__}: {exc}"[:500])


# Raised while preparing a message when the message itself is at fault (an
# address, its stored context, its kind's templates): the same row fails the
# same way every time, so trying again cannot help.
_UNPREPARABLE = (ValueError, LookupError, TypeError, ArithmeticError, TemplateError)


def _not_made(notification: Notification, error: Exception, now: datetime,
              max_attempts: int) -> dict:  # fmt: skip
    """The change for a message that could not be prepared."""
    reason = f"cannot prepare: {type(error).__name__}: {error}"[:500]
    if isinstance(error, _UNPREPARABLE):
        log.error("notification %s cannot be prepared: %s", notification.id,
                  type(error).__name__)  # fmt: skip
        return outbox.change(notification, outbox.FAILED, now, reason, lease_until=None)
    log.error("notification %s: preparing it failed", notification.id, exc_info=error)
    return outbox.retry(notification, reason, now, max_attempts)


def _load(session: Session, batch: list[Notification], now: datetime) -> BatchFacts:
    shop_ids = {n.shop_id for n in batch}
    customer_ids = {n.customer_id for n in batch if n.customer_id}
    addresses = {n.recipient for n in batch}
    shops = {s.id: s for s in session.exec(select(Shop).where(Shop.id.in_(shop_ids))).all()}
    customers = {
        c.id: c for c in session.exec(select(Customer).where(Customer.id.in_(customer_ids))).all()
    }
    opted_out = {
        (o.shop_id, o.channel, o.address)
        for o in session.exec(
            select(ChannelOptOut).where(
                ChannelOptOut.shop_id.in_(shop_ids), ChannelOptOut.address.in_(addresses)
            )
        ).all()
    }
    sends: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    # What other workers are sending right now counts too (as of its claim):
    # two workers may hold messages for the same customer at once.
    recent = session.exec(
        select(
            Notification.shop_id,
            Notification.customer_id,
            func.coalesce(Notification.sent_at, Notification.updated_at),
        ).where(
            Notification.shop_id.in_(shop_ids),
            Notification.customer_id.in_(customer_ids),
            or_(
                Notification.sent_at > now - policy.CAP_WINDOW,
                (Notification.status == outbox.SENDING)
                & Notification.id.not_in([n.id for n in batch]),
            ),
        )
    ).all()
    for shop_id, customer_id, sent_at in recent:
        sends[(shop_id, customer_id)].append(sent_at)
    overrides = {
        (o.shop_id, o.kind, o.channel, o.locale): o
        for o in session.exec(
            select(TemplateOverride).where(TemplateOverride.shop_id.in_(shop_ids))
        ).all()
    }
    order_ids = {n.order_id for n in batch if n.order_id}
    orders = {
        o.id: o
        for o in session.exec(
            select(Order).where(Order.shop_id.in_(shop_ids), Order.id.in_(order_ids))
        ).all()
    }
    shipments = {
        (s.order_id, s.tracking_number): s
        for s in session.exec(
            select(Shipment)
            .where(Shipment.shop_id.in_(shop_ids), Shipment.order_id.in_(order_ids))
            .order_by(Shipment.source_updated_at)
        ).all()
        if s.tracking_number
    }
    return BatchFacts(shops, customers, opted_out, sends, overrides, orders, shipments)


def _prepare(
    rt: Runtime,
    facts: BatchFacts,
    notification: Notification,
    now: datetime,
    no_longer_true: StaleCheck,
) -> Prepared | None:
    """The message to send, or None after suppressing or deferring it (the
    change is added to `facts.changes`)."""
    changes = facts.changes
    shop = facts.shops.get(notification.shop_id)
    if shop is None or shop.uninstalled_at is not None:
        changes.append(outbox.change(notification, outbox.SUPPRESSED, now, "the shop uninstalled",
                                     lease_until=None))  # fmt: skip
        return None
    if notification.attempts > rt.settings.outbox_max_attempts:
        # Claimed again and again without a result: its sending kills workers.
        changes.append(outbox.change(notification, outbox.DEAD, now, "never finished sending",
                                     lease_until=None))  # fmt: skip
        return None
    _one_line_address(notification.recipient, "recipient")
    order = facts.orders.get(notification.order_id)
    stale = no_longer_true(notification.kind, order)
    if stale:
        changes.append(outbox.change(notification, outbox.SUPPRESSED, now, stale,
                                     lease_until=None))  # fmt: skip
        return None
    customer = facts.customers.get(notification.customer_id)
    consent = getattr(customer, f"{notification.channel}_consent", None) if customer else None
    opted_out = (shop.id, notification.channel, notification.recipient) in facts.opted_out
    refusal = policy.may_send(
        policy.Reachability(notification.channel, notification.recipient, consent, opted_out),
        notification.category,
    )
    if refusal:
        changes.append(outbox.change(notification, outbox.SUPPRESSED, now, refusal,
                                     lease_until=None))  # fmt: skip
        return None
    if notification.quiet_hours and notification.channel in policy.QUIET_CHANNELS:
        tz = policy.zone(customer.timezone if customer else None, shop.timezone)
        start, end = (
            policy.parse_clock(shop.quiet_hours_start),
            policy.parse_clock(shop.quiet_hours_end),
        )
        until = policy.quiet_until(now, tz, start, end)
        if until:
            changes.append(
                outbox.deferred(notification, until, f"quiet hours until {until.isoformat()}", now)
            )
            return None
    if notification.customer_id:
        sends = facts.sends[(shop.id, notification.customer_id)]
        until = policy.cap_until(sends, shop.daily_message_cap, now)
        if until:
            changes.append(outbox.deferred(notification, until, "frequency cap reached", now))
            return None
        sends.append(now)

    queued = _revive(json.loads(notification.context))
    shipment = facts.shipments.get((notification.order_id, queued.get("tracking_number")))
    context = truth.current_facts(queued, order, shipment, now) | {"shop_name": shop.name}
    if notification.category == policy.MARKETING:
        context["unsubscribe_url"] = unsubscribe_url(
            rt.settings, shop.id, notification.channel, notification.recipient
        )
    rendered = _render(facts, shop, notification, context)
    if notification.channel == "email":
        sender = shop.email_from or rt.settings.email_from
        _one_line_address(sender, "sender")
        headers = {}
        if context.get("unsubscribe_url"):
            headers = {
                "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        message = EmailMessage(
            message_id=message_id_for(
                f"{shop.id}:{notification.id}:{notification.created_at.isoformat()}",
                rt.settings.secret_key, sender.rpartition("@")[2],
            ),
            sender=sender, sender_name=shop.name, to=notification.recipient,
            subject=rendered.subject or shop.name, html=rendered.html or "", text=rendered.text,
            headers=headers,
        )  # fmt: skip
        return Prepared(notification, message)
    callback = None
    if rt.settings.twilio_account_sid:
        callback = f"{rt.settings.public_url}/webhooks/twilio/status"
    _one_line_address(shop.sms_from or "", "sender")
    body = rendered.text.strip()
    message = SmsMessage(
        to=notification.recipient,
        sender=shop.sms_from or rt.settings.twilio_from or "CareLoop",
        body=body,
        status_callback=callback,
    )
    return Prepared(notification, message, segments(body)[1])


def _one_line_address(address: str, what: str) -> None:
    """An address goes into a header or a provider's form field: a CR or LF
    (or any other control character) in it would let it write headers of its
    own, so the message is refused where it is built."""
    if any(ord(c) < 32 or ord(c) == 127 for c in address):
        raise ValueError(f"the {what} address contains a control character")


def _render(facts: BatchFacts, shop: Shop, notification: Notification, context: dict):
    """The shop's own template when it has one for this message; ours if it
    has none, or if its own cannot render (saved templates are validated, so
    that is a bug worth a log line, not a lost message)."""
    override = next(
        (
            facts.overrides[key]
            for locale in locale_chain(notification.locale)
            if (key := (shop.id, notification.kind, notification.channel, locale))
            in facts.overrides
        ),
        None,
    )
    source = (
        rendering.TemplateSource(override.subject, override.html, override.text)
        if override
        else None
    )
    arguments = (notification.kind, notification.channel, notification.locale, context)
    try:
        return rendering.render(*arguments, shop_locale=shop.locale, override=source)
    except TemplateError as exc:
        if source is None:
            raise
        log.error("shop %s: its %s template failed (%s); using ours", shop.id, notification.kind,
                  type(exc).__name__)  # fmt: skip
        return rendering.render(*arguments, shop_locale=shop.locale)


def _revive(context: dict) -> dict:
    """Dates and amounts were stored as text in the context JSON."""
    for name in ("estimated_delivery", "promised_date", "expected_date"):
        if context.get(name):
            context[name] = datetime.fromisoformat(context[name])
    if context.get("total") is not None:
        context["total"] = Decimal(str(context["total"]))
    return context


def _outcome(
    session: Session, item: Prepared, result: SendResult, provider: str, now: datetime,
    max_attempts: int,
) -> dict:  # fmt: skip
    notification = item.notification
    if result.outcome == Outcome.SENT:
        return outbox.change(
            notification, outbox.SENT, now, None,
            provider=provider, provider_message_id=result.provider_id, sent_at=now,
            segments=item.segments, lease_until=None,
        )  # fmt: skip
    if result.outcome == Outcome.PERMANENT:
        if result.unsubscribed:
            outbox.opt_out(
                session, notification.shop_id, notification.channel, notification.recipient,
                f"{provider}: {result.error_code or 'unsubscribed'}", now,
            )  # fmt: skip
        detail = " ".join(filter(None, [result.error_code, result.reason])) or "refused"
        return outbox.change(notification, outbox.FAILED, now, detail, provider=provider,
                             lease_until=None)  # fmt: skip
    return outbox.retry(notification, result.reason or "temporary failure", now, max_attempts)
