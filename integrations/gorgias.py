"""Gorgias, through an HTTP integration (Settings → HTTP integration) that
fires on ticket created, ticket updated and ticket message created, and
POSTs the ticket as JSON.

Gorgias signs nothing and sends no delivery id (developers.gorgias.com,
"The Integration object": an HTTP integration is a URL, a method, headers
and a body template). So each shop's connection gets a random secret that
the merchant pastes into the integration's headers as `X-CareLoop-Secret`;
we compare it in constant time. A retry repeats the same bytes, so a hash of
the body is the dedupe key.

The body is the ticket as the Ticket object documents it (`id`, `status`
open/closed, `channel`, `via`, `spam`, `subject`, `customer`,
`assignee_user`, `tags`, `messages` with `from_agent` and `public`,
`created_datetime`, `updated_datetime`, `closed_datetime`), under "ticket",
with the message that fired a message-created trigger under "message".
tests/fixtures/gorgias/README.md gives the body template to paste, made of
Gorgias variables (`{{ticket.id}}`…): rendered, those come as strings, which
is why numbers and booleans are read from strings too. Every delivery is a
snapshot of the ticket at its `updated_datetime`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from app.events import (
    Described,
    Event,
    PayloadError,
    TicketMessageFact,
    TicketSnapshot,
)
from integrations import fields
from integrations import helpdesk_fields as hf

SOURCE = "gorgias"
KIND = "helpdesk"
SECRET_REQUIRED = False
GENERATES_SECRET = True  # we make the secret; the merchant pastes it into Gorgias
SECRET_HEADER = "X-CareLoop-Secret"
TOPIC = "ticket"

# Gorgias ticket channels (the API's channel list) in our words.
CHANNELS = {
    "email": "email", "contact_form": "email", "chat": "chat", "sms": "sms",
    "phone": "phone", "aircall": "phone", "facebook": "social",
    "facebook-mention": "social", "facebook-messenger": "social", "instagram-comment": "social",
    "instagram-direct-message": "social", "instagram-ad-comment": "social",
    "twitter": "social", "twitter-direct-message": "social", "whatsapp": "social",
}  # fmt: skip
STATUSES = {"open": "open", "closed": "closed"}


# What the merchant pastes as the HTTP integration's request body (JSON):
# Gorgias fills the variables when a trigger fires.
BODY_TEMPLATE = """{"ticket": {"id": "{{ticket.id}}", "status": "{{ticket.status}}",
  "channel": "{{ticket.channel}}", "via": "{{ticket.via}}", "spam": "{{ticket.spam}}",
  "subject": "{{ticket.subject}}", "tags": "{{ticket.tags}}",
  "customer": {"email": "{{ticket.customer.email}}", "phone": "{{ticket.customer.phone}}"},
  "assignee_user": {"email": "{{ticket.assignee_user.email}}"},
  "created_datetime": "{{ticket.created_datetime}}",
  "updated_datetime": "{{ticket.updated_datetime}}"},
 "message": {"id": "{{message.id}}", "from_agent": "{{message.from_agent}}",
  "public": "{{message.public}}", "body_text": "{{message.body_text}}",
  "created_datetime": "{{message.created_datetime}}"}}"""


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def check_secret(secret: str) -> None:
    if len(secret) < 32:
        raise ValueError("use at least 32 random characters (or leave it out: we make one)")


def authenticate(secret: str | None, headers: Mapping[str, str], body: bytes) -> bool:
    given = headers.get(SECRET_HEADER, "")
    return secret is not None and hmac.compare_digest(given.encode(), secret.encode())


def describe(headers: Mapping[str, str], body: bytes, payload: dict) -> Described:
    parse(TOPIC, payload, None)  # refuse at the door what we could never apply
    return Described(TOPIC, f"sha256:{hashlib.sha256(body).hexdigest()}")


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    ticket = fields.mapping(payload.get("ticket"), "ticket")
    if not ticket:
        raise PayloadError("ticket must be an object")
    updated_at = hf.utc_time(ticket.get("updated_datetime"), "ticket.updated_datetime")
    if updated_at is None:
        raise PayloadError("missing ticket.updated_datetime")
    raw_status = (fields.text(ticket.get("status"), "ticket.status", 32) or "").lower()
    if raw_status and raw_status not in STATUSES:
        raise PayloadError(f"ticket.status must be one of {', '.join(STATUSES)}")
    raw_channel = (fields.text(ticket.get("channel"), "ticket.channel", 64) or "").lower()
    customer = fields.mapping(ticket.get("customer"), "ticket.customer")
    assignee = fields.mapping(ticket.get("assignee_user"), "ticket.assignee_user")
    messages = [
        _message(m, f"ticket.messages[{i}]")
        for i, m in enumerate(fields.mappings(ticket.get("messages"), "ticket.messages"))
    ]
    message = fields.mapping(payload.get("message"), "message")
    if hf.ident(message.get("id"), "message.id"):
        messages.append(_message(message, "message"))
    return [
        TicketSnapshot(
            source=SOURCE,
            external_id=hf.required_ident(ticket.get("id"), "ticket.id"),
            updated_at=updated_at,
            status=STATUSES.get(raw_status),
            channel=CHANNELS.get(raw_channel, "other") if raw_channel else None,
            opened_at=hf.utc_time(ticket.get("created_datetime"), "ticket.created_datetime"),
            subject=fields.clip(ticket.get("subject"), "ticket.subject", 1000),
            requester_email=hf.email(customer.get("email"), "ticket.customer.email"),
            requester_phone=hf.phone(customer.get("phone"), "ticket.customer.phone"),
            assignee=fields.text(assignee.get("email"), "ticket.assignee_user.email", 255)
            or fields.text(assignee.get("name"), "ticket.assignee_user.name", 255),
            tags=hf.tags(ticket.get("tags"), "ticket.tags"),
            spam=hf.flag(ticket.get("spam"), "ticket.spam"),
            internal=raw_channel == "internal-note" or None,
            # An agent opened it from the helpdesk rather than the customer writing in.
            agent_started=(fields.text(ticket.get("via"), "ticket.via", 64) == "helpdesk")
            if ticket.get("via")
            else None,
            messages=tuple(messages),
        )
    ]


def _message(message: Mapping, name: str) -> TicketMessageFact:
    sent_at = hf.utc_time(message.get("created_datetime"), f"{name}.created_datetime")
    if sent_at is None:
        raise PayloadError(f"missing {name}.created_datetime")
    public = hf.flag(message.get("public"), f"{name}.public")
    from_agent = hf.flag(message.get("from_agent"), f"{name}.from_agent")
    return TicketMessageFact(
        external_id=hf.required_ident(message.get("id"), f"{name}.id"),
        author_kind="agent" if from_agent else "customer",
        public=True if public is None else public,
        sent_at=sent_at,
        body=fields.clip(message.get("body_text"), f"{name}.body_text", 10_000),
    )


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    return None, None  # a helpdesk names no Shopify customer or order by id
