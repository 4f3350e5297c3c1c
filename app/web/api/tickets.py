"""Tickets, for shops without a helpdesk we speak (or with one we do not):
open a ticket, add its messages, close and reopen it, and record a rating
collected elsewhere. The same domain as the helpdesk webhooks
(`app.tickets`), applied at once since the caller is the shop itself. And
the shop's support settings (survey timing and rules, the support address)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlmodel import Session, select

from app.events import TicketMessageFact, TicketSnapshot
from app.models import SupportSettings, Survey, Ticket, TicketMessage
from app.surveys import record_elsewhere
from app.tickets import apply_ticket, support_settings, tag_list
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.schemas import (
    RatingIn,
    SupportSettingsChange,
    SupportSettingsDoc,
    TicketAt,
    TicketCreate,
    TicketDocument,
    TicketList,
    TicketMessageIn,
    TicketsQuery,
)

SOURCE = "api"
ONE = "/tickets/<row_id:ticket_id>"


def _facts(messages: list[TicketMessageIn], now: datetime) -> tuple[TicketMessageFact, ...]:
    return tuple(
        TicketMessageFact(
            external_id=m.id or f"api-{uuid.uuid4().hex}",
            author_kind=m.author,
            public=m.public,
            sent_at=m.sent_at or now,
            body=m.body,
        )
        for m in messages
    )


def _document(session: Session, ticket: Ticket) -> TicketDocument:
    messages = session.exec(
        select(TicketMessage)
        .where(TicketMessage.shop_id == ticket.shop_id, TicketMessage.ticket_id == ticket.id)
        .order_by(TicketMessage.sent_at, TicketMessage.id)
    ).all()
    survey = session.exec(
        select(Survey).where(Survey.shop_id == ticket.shop_id, Survey.ticket_id == ticket.id)
    ).first()
    return TicketDocument(
        **_summary(ticket),
        messages=[
            {
                "id": m.external_id,
                "author": m.author_kind,
                "public": m.public,
                "sent_at": m.sent_at,
                "body": m.body,
            }
            for m in messages
        ],
        survey=survey.model_dump() if survey else None,
    )


def _summary(ticket: Ticket) -> dict:
    return ticket.model_dump() | {"tags": tag_list(ticket)}


def _own(session: Session, ticket_id: int) -> Ticket | None:
    ticket = session.get(Ticket, ticket_id)
    return ticket if ticket is not None and ticket.shop_id == shop_id() else None


@api.route("POST", "/tickets", body=TicketCreate, response=TicketDocument, status=201,
           errors=(409,))  # fmt: skip
def post_ticket(body: TicketCreate):
    """Open a ticket (with its first messages, if any)."""
    rt = runtime()
    now = rt.clock.now()
    external_id = body.external_id or f"api-{uuid.uuid4().hex}"
    with Session(rt.engine) as session:
        taken = session.exec(
            select(Ticket.id).where(
                Ticket.shop_id == shop_id(),
                Ticket.source == SOURCE,
                Ticket.external_id == external_id,
            )
        ).first()
        if taken is not None:
            return error_response(409, "exists", f"ticket {external_id!r} exists: id {taken}")
        requester = body.requester or None
        ticket = apply_ticket(session, shop_id(), TicketSnapshot(
            source=SOURCE, external_id=external_id, updated_at=body.opened_at or now,
            status="open", channel=body.channel, opened_at=body.opened_at or now,
            subject=body.subject, requester_email=requester.email if requester else None,
            requester_phone=requester.phone if requester else None, assignee=body.assignee,
            tier=body.tier, tags=tuple(body.tags), ticket_type=body.type,
            order_name=body.order_name, agent_started=body.agent_started,
            internal=body.internal, messages=_facts(body.messages, now),
        ), now)  # fmt: skip
        session.commit()
        return _document(session, ticket)


@api.route("GET", "/tickets", query=TicketsQuery, response=TicketList)
def get_tickets(query: TicketsQuery):
    """The shop's tickets, newest first, a page at a time."""
    with Session(runtime().engine) as session:
        select_tickets = select(Ticket).where(Ticket.shop_id == shop_id())
        if query.status:
            select_tickets = select_tickets.where(Ticket.status == query.status)
        if query.cursor:
            select_tickets = select_tickets.where(Ticket.id < query.cursor)
        tickets = session.exec(select_tickets.order_by(Ticket.id.desc()).limit(query.limit)).all()
        return TicketList(
            tickets=[_summary(t) for t in tickets],
            next_cursor=tickets[-1].id if len(tickets) == query.limit else None,
        )


@api.route("GET", ONE, response=TicketDocument, errors=(404,))
def get_ticket(ticket_id: int):
    """One ticket with its messages and its survey."""
    with Session(runtime().engine) as session:
        ticket = _own(session, ticket_id)
        if ticket is None:
            return error_response(404, "not_found", f"no ticket {ticket_id} in this shop")
        return _document(session, ticket)


def _change(ticket_id: int, snapshot) -> object:
    """Apply a change to one of the shop's own API tickets."""
    rt = runtime()
    now = rt.clock.now()
    with Session(rt.engine) as session:
        ticket = _own(session, ticket_id)
        if ticket is None:
            return error_response(404, "not_found", f"no ticket {ticket_id} in this shop")
        if ticket.source != SOURCE:
            return error_response(
                409, "not_ours", f"ticket {ticket_id} comes from {ticket.source}: change it there"
            )
        change = snapshot(ticket, now)
        if change.status is not None and change.updated_at < ticket.source_updated_at:
            return error_response(
                409, "out_of_order", "the ticket changed after that time; give a later `at`"
            )
        ticket = apply_ticket(session, ticket.shop_id, change, now)
        session.commit()
        return _document(session, ticket)


@api.route("POST", f"{ONE}/messages", body=TicketMessageIn, response=TicketDocument,
           status=201, errors=(404, 409))  # fmt: skip
def post_ticket_message(ticket_id: int, body: TicketMessageIn):
    """Add a message: the customer's or an agent's, public or internal."""
    return _change(ticket_id, lambda ticket, now: TicketSnapshot(
        source=SOURCE, external_id=ticket.external_id, updated_at=body.sent_at or now,
        messages=_facts([body], now),
    ))  # fmt: skip


def _status(ticket_id: int, body: TicketAt, status: str):
    return _change(ticket_id, lambda ticket, now: TicketSnapshot(
        source=SOURCE, external_id=ticket.external_id, updated_at=body.at or now, status=status,
    ))  # fmt: skip


@api.route("POST", f"{ONE}/close", body=TicketAt, response=TicketDocument, errors=(404, 409))
def close_ticket(ticket_id: int, body: TicketAt):
    """Close (solve) a ticket: its survey is due after the shop's delay."""
    return _status(ticket_id, body, "closed")


@api.route("POST", f"{ONE}/reopen", body=TicketAt, response=TicketDocument, errors=(404, 409))
def reopen_ticket(ticket_id: int, body: TicketAt):
    """Reopen a ticket: a survey not sent yet waits for the next close."""
    return _status(ticket_id, body, "open")


@api.route("POST", f"{ONE}/rating", body=RatingIn, response=TicketDocument, errors=(404,))
def post_ticket_rating(ticket_id: int, body: RatingIn):
    """Record a rating collected elsewhere; CareLoop then sends no survey."""
    rt = runtime()
    with Session(rt.engine) as session:
        ticket = _own(session, ticket_id)
        if ticket is None:
            return error_response(404, "not_found", f"no ticket {ticket_id} in this shop")
        at = body.answered_at or rt.clock.now()
        record_elsewhere(session, ticket, body.rating, body.comment, at)
        session.commit()
        return _document(session, ticket)


# --- support settings -----------------------------------------------------------

SETTINGS = "/settings/support"
NULLABLE = ("reminder_after_hours", "support_email")


def _settings_doc(row: SupportSettings) -> SupportSettingsDoc:
    def words(text: str) -> list[str]:
        return [w for w in text.split("\n") if w]

    plain = set(SupportSettingsDoc.model_fields) - {"skip_tags", "force_tags", "type_map"}
    return SupportSettingsDoc(
        **{name: getattr(row, name) for name in plain},
        skip_tags=words(row.skip_tags or ""),
        force_tags=words(row.force_tags or ""),
        type_map=json.loads(row.type_map or "{}"),
    )


@api.route("GET", SETTINGS, response=SupportSettingsDoc)
def get_support_settings():
    """When surveys go and to whom, which tags skip or force one, how tags
    map to ticket types, and where low ratings are reported."""
    with Session(runtime().engine) as session:
        return _settings_doc(support_settings(session, shop_id()))


@api.route("PATCH", SETTINGS, body=SupportSettingsChange, response=SupportSettingsDoc)
def patch_support_settings(body: SupportSettingsChange):
    """Change the settings given; the others stay as they are."""
    rt = runtime()
    with Session(rt.engine) as session:
        row = support_settings(session, shop_id())
        changes = body.model_dump(exclude_unset=True)
        required = [n for n, v in changes.items() if v is None and n not in NULLABLE]
        if required:
            return error_response(400, "bad_request", f"{', '.join(required)} cannot be null")
        for name, value in changes.items():
            if name in ("skip_tags", "force_tags"):
                value = "\n".join(sorted({v.strip().lower() for v in value or []}))
            elif name == "type_map":
                value = json.dumps({k.strip().lower(): v for k, v in (value or {}).items()})
            setattr(row, name, value)
        row.updated_at = rt.clock.now()
        session.add(row)
        session.commit()
        return _settings_doc(row)
