"""CSAT surveys: one per closed ticket, sent by a per-shop sweep when its
due time comes, answered through a signed link, and low ratings reported
to the shop's support address at once.

Who is asked (`why_not_survey`, a plain function): never spam or merged
tickets; a ticket tagged with one of the shop's force tags always; one
tagged with a skip tag, an internal one, or one an agent started, never; a
customer surveyed within the shop's cool-down (default 30 days) not again.
A reopened and re-closed ticket is not asked twice (a survey row per
ticket, unique). The agent is the assignee when the survey goes, since
automations often unassign on close.

The link (`/s/<token>`): the token is the survey's id and an HMAC-SHA256
(the app's secret key) over the shop, the survey, its ticket and its
customer, so it cannot be guessed, bent to another ticket or forged, and
needs nothing stored. It is short enough for an SMS. A rating can be
changed for `CHANGEABLE` after the survey was sent; then the link expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, select

from app import recovery
from app.models import Customer, Notification, Order, Shop, SupportSettings, Survey, Ticket
from app.rules import Audience, Rule, notify
from app.runtime import Runtime
from app.shop_jobs import enqueue_once
from app.tickets import support_settings, tag_list, wake_sweep
from notifications import outbox, policy
from notifications.phone import to_e164

CHANGEABLE = timedelta(days=14)
LOW_RATING = 2  # at or below: the shop's support address is told at once
SWEEP_BATCH = 500
NOBODY = "nobody to ask"
# A closed ticket whose requester we do not know yet is looked at again
# this often, for this long (a Zendesk requester mapping may come later).
RECHECK_REQUESTER = timedelta(minutes=15)
WAIT_FOR_REQUESTER = timedelta(days=1)
_MAC_BYTES = 16  # 128 bits: unguessable, and 22 characters in the link


def survey_rule(ticket_channel: str) -> Rule:
    """Email for email tickets, SMS for SMS ones, else the customer's best."""
    channels = {"email": ("email",), "sms": ("sms",)}.get(ticket_channel, ("email", "sms"))
    return Rule("survey", policy.TRANSACTIONAL, channels)


def why_not_survey(
    ticket: Ticket, settings: SupportSettings, surveyed_recently: bool
) -> str | None:
    """Why this closed ticket gets no survey, or None if it gets one."""
    tags = set(tag_list(ticket))
    if ticket.spam or ticket.merged:
        return "spam" if ticket.spam else "merged"
    if tags & _words(settings.force_tags):
        return None
    if tags & _words(settings.skip_tags):
        return "skip tag"
    if ticket.internal:
        return "internal"
    if ticket.agent_started:
        return "agent started"
    if surveyed_recently:
        return "surveyed recently"
    if not (ticket.customer_id or ticket.requester_email or ticket.requester_phone):
        return NOBODY
    return None


def _words(text: str) -> set[str]:
    return {w.strip().lower() for w in text.replace(",", "\n").split("\n") if w.strip()}


# --- the token ----------------------------------------------------------------


def _mac(secret_key: str, survey: Survey) -> str:
    message = f"survey:{survey.shop_id}:{survey.id}:{survey.ticket_id}:{survey.customer_id}"
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).decode().rstrip("=")


def token_for(secret_key: str, survey: Survey) -> str:
    return f"{survey.id}.{_mac(secret_key, survey)}"


def survey_for_token(session: Session, secret_key: str, token: str) -> Survey | None:
    """The survey a token we signed names; None for anything else."""
    number, _, mac = token.partition(".")
    if not (number.isascii() and number.isdigit() and len(number) <= 18 and mac):
        return None
    survey = session.get(Survey, int(number))
    if survey is None or not hmac.compare_digest(_mac(secret_key, survey), mac):
        return None
    return survey


def form_token(secret_key: str, token: str) -> str:
    """What the survey page's forms carry: bound to the survey's token, so a
    form cannot be posted for another survey, and needing no cookie."""
    digest = hmac.new(secret_key.encode(), f"survey-form:{token}".encode(), hashlib.sha256)
    return digest.hexdigest()


def expired(survey: Survey, now: datetime) -> bool:
    return survey.sent_at is None or now > survey.sent_at + CHANGEABLE


# --- sending --------------------------------------------------------------------


@dataclass(frozen=True)
class TicketAudience(Audience):
    """The ticket's requester: our customer when matched, and the address
    they wrote from (an email ticket is answered where it came from)."""

    ticket: Ticket | None = None

    @property
    def email(self) -> str | None:
        return self.ticket.requester_email or super().email

    @property
    def phone(self) -> str | None:
        own = to_e164(self.ticket.requester_phone or "", None)
        return own or super().phone

    @property
    def key(self) -> str:
        if self.customer is not None:
            return super().key
        return f"ticket-requester:{self.ticket.source}:{self.ticket.external_id}"


def sweep(rt: Runtime, shop_id: int) -> None:
    """The per-shop job: send the surveys and reminders that are due."""
    now = rt.clock.now()
    with Session(rt.engine) as session:
        send_due(session, shop_id, now, rt.settings.secret_key, rt.settings.public_url)
        remind_due(session, shop_id, now, rt.settings.secret_key, rt.settings.public_url)
        session.commit()


def send_due(
    session: Session, shop_id: int, now: datetime, secret_key: str, public_url: str
) -> int:
    """Survey the shop's tickets whose survey is due; returns how many went."""
    due = session.exec(
        select(Ticket)
        .where(Ticket.shop_id == shop_id, Ticket.survey_due_at <= now)
        .order_by(Ticket.survey_due_at)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    settings = support_settings(session, shop_id)
    shop = session.get(Shop, shop_id)
    sent = 0
    for ticket in due:
        ticket.survey_due_at = None
        session.add(ticket)
        if ticket.status not in ("solved", "closed") or _has_survey(session, ticket):
            continue
        reason = why_not_survey(
            ticket, settings, _surveyed_recently(session, ticket, settings, now)
        )
        if reason == NOBODY and ticket.closed_at and now < ticket.closed_at + WAIT_FOR_REQUESTER:
            # Zendesk's events name no requester: its mapping may still come.
            ticket.survey_due_at = now + RECHECK_REQUESTER
            wake_sweep(session, shop_id, ticket.survey_due_at, now)
        if reason:
            continue
        sent += _send(session, shop, ticket, settings, now, secret_key, public_url)
    session.flush()
    return sent


def _has_survey(session: Session, ticket: Ticket) -> bool:
    return (
        session.exec(
            select(Survey.id).where(Survey.shop_id == ticket.shop_id, Survey.ticket_id == ticket.id)
        ).first()
        is not None
    )


def _surveyed_recently(
    session: Session, ticket: Ticket, settings: SupportSettings, now: datetime
) -> bool:
    since = now - timedelta(days=settings.survey_cooldown_days)
    same_person = (
        [Ticket.requester_email == ticket.requester_email] if ticket.requester_email else []
    )
    if ticket.customer_id is not None:
        same_person.append(Survey.customer_id == ticket.customer_id)
    if not same_person:
        return False
    found = session.exec(
        select(Survey.id)
        .join(Ticket, Ticket.id == Survey.ticket_id)
        .where(Survey.shop_id == ticket.shop_id, Survey.sent_at >= since, or_(*same_person))
    ).first()
    return found is not None


def _send(
    session: Session,
    shop: Shop,
    ticket: Ticket,
    settings: SupportSettings,
    now: datetime,
    secret_key: str,
    public_url: str,
) -> int:
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    order = session.get(Order, ticket.order_id) if ticket.order_id else None
    survey = Survey(
        shop_id=shop.id, ticket_id=ticket.id, customer_id=ticket.customer_id,
        agent=ticket.assignee, source="careloop", sent_at=now, created_at=now,
        locale=(customer.locale if customer else None) or shop.locale,
    )  # fmt: skip
    session.add(survey)
    session.flush()
    audience = TicketAudience(shop, customer, order, ticket)
    rule = survey_rule(ticket.channel)
    subject = f"ticket:{ticket.id}"
    notify(session, rule, audience, now, subject=subject, facts=_facts(
        ticket, f"{public_url}/s/{token_for(secret_key, survey)}", reminder=False
    ))  # fmt: skip
    queued = _notification(session, shop.id, f"{audience.key}:{rule.kind}:{subject}")
    if queued is None or queued.status == outbox.SUPPRESSED:
        survey.sent_at = None  # nobody could be asked: the survey stays, unsent
    else:
        survey.channel = queued.channel
        if settings.reminder_after_hours:
            survey.reminder_due_at = now + timedelta(hours=settings.reminder_after_hours)
            wake_sweep(session, shop.id, survey.reminder_due_at, now)
    session.add(survey)
    return survey.sent_at is not None


def _notification(session: Session, shop_id: int, key: str) -> Notification | None:
    return session.exec(
        select(Notification).where(Notification.shop_id == shop_id, Notification.key == key)
    ).first()


def _facts(ticket: Ticket, url: str, *, reminder: bool) -> dict:
    return {"survey_url": url, "ticket_subject": ticket.subject, "reminder": reminder}


def remind_due(
    session: Session, shop_id: int, now: datetime, secret_key: str, public_url: str
) -> int:
    """One reminder to customers who have not answered (when the shop turned it on)."""
    due = session.exec(
        select(Survey)
        .where(Survey.shop_id == shop_id, Survey.reminder_due_at <= now)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    shop = session.get(Shop, shop_id)
    count = 0
    for survey in due:
        survey.reminder_due_at = None
        session.add(survey)
        if survey.rating is not None or expired(survey, now):
            continue
        ticket = session.get(Ticket, survey.ticket_id)
        customer = session.get(Customer, survey.customer_id) if survey.customer_id else None
        order = session.get(Order, ticket.order_id) if ticket.order_id else None
        rule = Rule("survey", policy.TRANSACTIONAL, (survey.channel or "email",))
        url = f"{public_url}/s/{token_for(secret_key, survey)}"
        audience = TicketAudience(shop, customer, order, ticket)
        facts = _facts(ticket, url, reminder=True)
        notify(session, rule, audience, now, subject=f"ticket:{ticket.id}:reminder", facts=facts)
        survey.reminded_at = now
        count += 1
    session.flush()
    return count


# --- answers --------------------------------------------------------------------


def record_rating(
    session: Session, survey: Survey, rating: int, now: datetime, comment: str | None = None
) -> None:
    """Record (or change) the rating; a low one tells the shop at once."""
    if not 1 <= rating <= 5:
        raise ValueError("a rating is 1 to 5")
    survey.rating = rating
    survey.answered_at = now
    if comment is not None:
        survey.comment = comment
    session.add(survey)
    if rating <= LOW_RATING and survey.alerted_at is None:
        _alert(session, survey, now, "rating")


def record_comment(session: Session, survey: Survey, comment: str, now: datetime) -> None:
    survey.comment = comment
    session.add(survey)
    if survey.rating is not None and survey.rating <= LOW_RATING:
        _alert(session, survey, now, "comment")


def _alert(session: Session, survey: Survey, now: datetime, what: str) -> None:
    """Tell the shop's support address about a low rating (and, once it
    comes, its comment). A shop without a support address is not told; the
    report still lists it. With `SupportSettings.recovery_message` on, the
    customer's apology with a discount is queued too (`app.recovery`)."""
    settings = support_settings(session, survey.shop_id)
    survey.alerted_at = survey.alerted_at or now
    session.add(survey)
    if what == "rating" and settings.recovery_message and survey.customer_id is not None:
        # The apology with a code: made by a job, Shopify is called there.
        enqueue_once(session, survey.shop_id, recovery.JOB, f"survey:{survey.id}", now)
    if not settings.support_email:
        return
    ticket = session.get(Ticket, survey.ticket_id)
    customer = session.get(Customer, survey.customer_id) if survey.customer_id else None
    order = session.get(Order, ticket.order_id) if ticket.order_id else None
    name = " ".join(filter(None, [customer.first_name, customer.last_name])) if customer else None
    outbox.enqueue(
        session,
        shop_id=survey.shop_id,
        key=f"support:survey-alert:{survey.id}:{what}",
        kind="survey_alert",
        category=policy.TRANSACTIONAL,
        channel="email",
        recipient=settings.support_email,
        locale=session.get(Shop, survey.shop_id).locale,
        context={
            "rating": survey.rating,
            "comment": survey.comment,
            "ticket_source": ticket.source,
            "ticket_id": ticket.external_id,
            "ticket_subject": ticket.subject,
            "agent": survey.agent,
            "customer_name": name,
            "customer_email": (customer.email if customer else None) or ticket.requester_email,
            "customer_phone": (customer.phone if customer else None) or ticket.requester_phone,
            "order_name": order.name if order else None,
        },
        now=now,
    )


def record_elsewhere(
    session: Session, ticket: Ticket, rating: int, comment: str | None, at: datetime
) -> Survey:
    """A rating the shop collected itself (`POST /api/v1/tickets/<id>/rating`):
    it is the ticket's survey, and CareLoop sends none for that ticket."""
    survey = session.exec(
        select(Survey).where(Survey.shop_id == ticket.shop_id, Survey.ticket_id == ticket.id)
    ).first() or Survey(
        shop_id=ticket.shop_id, ticket_id=ticket.id, customer_id=ticket.customer_id,
        agent=ticket.assignee, source="api", sent_at=at, created_at=at,
    )  # fmt: skip
    ticket.survey_due_at = None
    session.add(ticket)
    session.add(survey)
    session.flush()
    record_rating(session, survey, rating, at, comment)
    return survey
