"""Support tickets: applying what a helpdesk (or our own API) says about a
ticket, whatever order the deliveries come in.

A delivery is a `TicketSnapshot` stamped with the helpdesk's `updated_at`.
Its status, assignee, tags and flags apply only when it is newer than what
we hold (`source_updated_at`): a late "created" after "closed" never reopens
a ticket. What only grows is taken from any delivery, old or new: the
earliest opening time, the messages (deduplicated by id), the first public
agent reply, the customer and the order once matched.

The facts derived here (`Ticket.type`, `customer_id`, `order_id`) are what
the support reports group by; the survey sweep (`app.surveys`) reads
`survey_due_at`, which a close sets and a reopen clears. The caller owns the
transaction.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from app.db import insert_ignoring_conflicts
from app.events import TicketSnapshot, order_number
from app.models import (
    Customer,
    Order,
    SupportSettings,
    Survey,
    Ticket,
    TicketMessage,
    TicketStatusChange,
)
from app.order_state import OrderState
from app.shop_jobs import enqueue_once

CLOSED = frozenset({"solved", "closed"})
SURVEY_SWEEP = "surveys.sweep"  # the per-shop job that sends due surveys (app.jobs)
TYPES = ("where_is_my_order", "return", "damage", "product_question", "other")
# Tags (and helpdesk type fields) that name a ticket type, lower case. A
# shop's own map (`SupportSettings.type_map`) is read over these.
DEFAULT_TYPE_MAP: dict[str, str] = {
    "wismo": "where_is_my_order",
    "where_is_my_order": "where_is_my_order",
    "where-is-my-order": "where_is_my_order",
    "order-status": "where_is_my_order",
    "shipping": "where_is_my_order",
    "delivery": "where_is_my_order",
    "tracking": "where_is_my_order",
    "return": "return",
    "returns": "return",
    "refund": "return",
    "exchange": "return",
    "damage": "damage",
    "damaged": "damage",
    "broken": "damage",
    "product_question": "product_question",
    "product-question": "product_question",
    "product": "product_question",
    "question": "product_question",
    "sizing": "product_question",
}
# "#1001", "# 1001", "order 1001": how customers and agents name an order.
ORDER_NAME = re.compile(r"(?:#\s?|\border\s+(?:no\.?\s*|number\s+)?)(\d{3,12})\b", re.IGNORECASE)
OPEN_ORDER_STATES = tuple(
    state
    for state in OrderState
    if state not in (OrderState.DELIVERED, OrderState.CANCELLED, OrderState.REFUNDED)
)


def support_settings(session: Session, shop_id: int) -> SupportSettings:
    """The shop's support settings, or the defaults (not added to the session)."""
    found = session.exec(select(SupportSettings).where(SupportSettings.shop_id == shop_id)).first()
    return found or SupportSettings(shop_id=shop_id, updated_at=datetime.min)


def type_map(settings: SupportSettings) -> dict[str, str]:
    own = json.loads(settings.type_map or "{}")
    return DEFAULT_TYPE_MAP | {str(k).lower(): str(v) for k, v in own.items()}


def ticket_type(mapping: dict[str, str], type_field: str | None, tags: list[str]) -> str:
    """The type a ticket's type field or tags name (the field first), else other."""
    for word in ([type_field.lower()] if type_field else []) + tags:
        if word in mapping:
            return mapping[word]
    return "other"


def tag_list(ticket: Ticket) -> list[str]:
    return [tag for tag in (ticket.tags or "").split("\n") if tag]


def apply_ticket(session: Session, shop_id: int, snap: TicketSnapshot, now: datetime) -> Ticket:
    """Apply one helpdesk's view of a ticket; returns the ticket row, locked."""
    opened_at = snap.opened_at or min([snap.updated_at, *(m.sent_at for m in snap.messages)])
    created = insert_ignoring_conflicts(session, Ticket.__table__, {
        "shop_id": shop_id, "source": snap.source, "external_id": snap.external_id,
        "channel": snap.channel or "other", "status": "open", "type": "other",
        "opened_at": opened_at, "source_updated_at": snap.updated_at,
        "created_at": now, "spam": False, "merged": False, "agent_started": False,
        "internal": False,
    })  # fmt: skip
    ticket = session.exec(
        select(Ticket)
        .where(
            Ticket.shop_id == shop_id,
            Ticket.source == snap.source,
            Ticket.external_id == snap.external_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    settings = support_settings(session, shop_id)
    ticket.opened_at = min(ticket.opened_at, opened_at)
    if created is not None:
        change_status(session, ticket, None, "open", opened_at, settings, now)
    if _versioned(snap) and (created is not None or snap.updated_at >= ticket.source_updated_at):
        _apply_newer(session, ticket, snap, settings, now)
    else:  # older, or only messages or contacts: fill in what we do not know yet
        ticket.subject = ticket.subject or snap.subject
        ticket.requester_email = ticket.requester_email or _email(snap.requester_email)
        ticket.requester_phone = ticket.requester_phone or snap.requester_phone
    _add_messages(session, ticket, snap)
    _match_customer(session, ticket)
    _match_order(session, ticket, snap)
    session.add(ticket)
    session.flush()
    return ticket


# The facts a delivery's time versions. A delivery with none of them (only
# messages, or a Zendesk requester mapping stamped with its sending time)
# must not move the ticket's version past the real events still to come.
_VERSIONED = ("status", "channel", "subject", "assignee", "tier", "tags", "ticket_type", "spam",
              "merged", "agent_started", "internal")  # fmt: skip


def _versioned(snap: TicketSnapshot) -> bool:
    return any(getattr(snap, name) is not None for name in _VERSIONED)


def _apply_newer(
    session: Session,
    ticket: Ticket,
    snap: TicketSnapshot,
    settings: SupportSettings,
    now: datetime,
) -> None:
    ticket.source_updated_at = snap.updated_at
    for name in ("channel", "subject", "requester_phone", "assignee", "tier"):
        value = getattr(snap, name)
        if value is not None:
            setattr(ticket, name, value)
    if snap.requester_email:
        ticket.requester_email = _email(snap.requester_email)
    for flag in ("spam", "merged", "agent_started", "internal"):
        value = getattr(snap, flag)
        if value is not None:
            setattr(ticket, flag, value)
    if snap.tags is not None:
        ticket.tags = "\n".join(sorted({t.strip().lower() for t in snap.tags if t.strip()}))
    if snap.tags is not None or snap.ticket_type is not None:
        ticket.type = ticket_type(type_map(settings), snap.ticket_type, tag_list(ticket))
    if snap.status is not None and snap.status != ticket.status:
        change_status(session, ticket, ticket.status, snap.status, snap.updated_at, settings, now)


def change_status(
    session: Session,
    ticket: Ticket,
    previous: str | None,
    status: str,
    at: datetime,
    settings: SupportSettings,
    now: datetime,
) -> None:
    """Move the ticket from `previous` (None: it is new) to `status` at
    `at`, recorded; a close makes its survey due (unless it has one), a
    reopen puts a pending survey off."""
    ticket.status = status
    insert_ignoring_conflicts(session, TicketStatusChange.__table__, {
        "shop_id": ticket.shop_id, "ticket_id": ticket.id, "previous": previous,
        "status": status, "at": at,
    })  # fmt: skip
    if status in CLOSED and previous not in CLOSED:
        ticket.closed_at = at
        surveyed = session.exec(
            select(func.count())
            .select_from(Survey)
            .where(Survey.shop_id == ticket.shop_id, Survey.ticket_id == ticket.id)
        ).one()
        if not surveyed:
            ticket.survey_due_at = max(at, ticket.source_updated_at) + timedelta(
                minutes=settings.survey_delay_minutes
            )
            wake_sweep(session, ticket.shop_id, ticket.survey_due_at, now)
    elif status not in CLOSED:
        ticket.survey_due_at = None


def wake_sweep(session: Session, shop_id: int, due_at: datetime, now: datetime) -> None:
    """Queue the shop's survey sweep for when something falls due, so that
    a survey "at once" goes at once; the periodic sweep (`app.jobs`) is the
    safety net."""
    slot = f"due:{due_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"
    enqueue_once(session, shop_id, SURVEY_SWEEP, slot, now, due_at=max(due_at, now))


def _email(value: str | None) -> str | None:
    return value.strip().lower() if value and "@" in value else None


def _add_messages(session: Session, ticket: Ticket, snap: TicketSnapshot) -> None:
    for message in snap.messages:
        insert_ignoring_conflicts(session, TicketMessage.__table__, {
            "shop_id": ticket.shop_id, "ticket_id": ticket.id, "external_id": message.external_id,
            "author_kind": message.author_kind, "public": message.public,
            "sent_at": message.sent_at, "body": message.body,
        })  # fmt: skip
        first = ticket.first_response_at
        if (
            message.author_kind == "agent"
            and message.public
            and (first is None or message.sent_at < first)
        ):
            ticket.first_response_at = message.sent_at


def _match_customer(session: Session, ticket: Ticket) -> None:
    """Our customer with the requester's email, else phone (once found, kept)."""
    if ticket.customer_id is not None:
        return
    for column, value in ((Customer.email, ticket.requester_email),
                          (Customer.phone, ticket.requester_phone)):  # fmt: skip
        if not value:
            continue
        found = session.exec(
            select(Customer.id)
            .where(Customer.shop_id == ticket.shop_id, func.lower(column) == value.lower())
            .order_by(Customer.id)
        ).first()
        if found is not None:
            ticket.customer_id = found
            return


def _match_order(session: Session, ticket: Ticket, snap: TicketSnapshot) -> None:
    """The order the ticket is about: an order name in its subject or
    messages, else the helpdesk's order field, else the customer's latest
    open order. Once found, kept."""
    if ticket.order_id is not None:
        return
    texts = [ticket.subject or "", *(m.body or "" for m in snap.messages)]
    names = [match for text in texts for match in ORDER_NAME.findall(text)]
    if snap.order_name:
        names.append(order_number(snap.order_name))
    for number in names:
        found = session.exec(
            select(Order.id).where(
                Order.shop_id == ticket.shop_id, Order.name.in_((f"#{number}", number))
            )
        ).first()
        if found is not None:
            ticket.order_id = found
            return
    if ticket.customer_id is not None:
        ticket.order_id = session.exec(
            select(Order.id)
            .where(
                Order.shop_id == ticket.shop_id,
                Order.customer_id == ticket.customer_id,
                Order.state.in_(OPEN_ORDER_STATES),
            )
            .order_by(Order.shopify_created_at.desc(), Order.id.desc())
        ).first()
