"""Our generic helpdesk format, signed the Standard Webhooks way (see
`integrations.standard_webhooks`), for any helpdesk we do not speak:
`POST /webhooks/helpdesk/standard-helpdesk?key=...`. One ticket's facts as
the sender knows them at `timestamp`:

    {"type": "ticket.updated",
     "timestamp": "2026-12-01T10:00:00Z",
     "data": {"ticket_id": "T-1", "status": "solved", "channel": "email",
              "subject": "Where is #1001?", "opened_at": "...",
              "requester": {"email": "...", "phone": "+34..."},
              "assignee": "sam@shop.example", "tier": "2", "tags": ["wismo"],
              "type": "where_is_my_order", "order_name": "#1001",
              "spam": false, "merged": false, "agent_started": false, "internal": false,
              "messages": [{"id": "M-1", "author": "customer", "public": true,
                            "sent_at": "...", "body": "..."}]}}

`status` is one of open, pending, solved, closed; `channel` one of email,
chat, sms, phone, social, other; `author` customer, agent or system. Fields
left out keep what an earlier delivery said. Our own format is strict.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.events import (
    AUTHOR_KINDS,
    TICKET_CHANNELS,
    TICKET_STATUSES,
    Described,
    Event,
    PayloadError,
    TicketMessageFact,
    TicketSnapshot,
    UnsupportedTopic,
)
from integrations import fields, standard_webhooks

SOURCE = "standard-helpdesk"
TICKET_SOURCE = "standard"
KIND = "helpdesk"
SECRET_REQUIRED = True
TOPICS = frozenset({"ticket.created", "ticket.updated"})
check_secret = standard_webhooks.check_secret
authenticate = standard_webhooks.authenticate


def describe(headers: Mapping[str, str], body: bytes, payload: dict) -> Described:
    topic = payload.get("type")
    if not isinstance(topic, str) or topic not in TOPICS:
        raise UnsupportedTopic(f"type {str(topic)[:60]!r} is not handled")
    parse(topic, payload, None)
    return Described(topic, headers["webhook-id"], standard_webhooks.signed_at(headers))


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadError("data must be an object")
    stamp = fields.timestamp(payload.get("timestamp"), "timestamp")
    if stamp is None:
        raise PayloadError("timestamp is required (ISO-8601)")
    requester = fields.mapping(data.get("requester"), "data.requester")
    tags = data.get("tags")
    if tags is not None and not (
        isinstance(tags, list) and all(isinstance(t, str) for t in tags) and len(tags) <= 100
    ):
        raise PayloadError("data.tags must be a list of at most 100 strings")
    return [
        TicketSnapshot(
            source=TICKET_SOURCE,
            external_id=_required(data, "ticket_id", 128),
            updated_at=stamp,
            status=_choice(data, "status", TICKET_STATUSES),
            channel=_choice(data, "channel", TICKET_CHANNELS),
            opened_at=fields.timestamp(data.get("opened_at"), "data.opened_at"),
            subject=_text(data, "subject", 1000),
            requester_email=_text(requester, "email", 320, "data.requester"),
            requester_phone=_text(requester, "phone", 32, "data.requester"),
            assignee=_text(data, "assignee", 255),
            tier=_text(data, "tier", 32),
            tags=None if tags is None else tuple(t.strip().lower()[:100] for t in tags),
            ticket_type=_text(data, "type", 32),
            order_name=_text(data, "order_name", 64),
            spam=_flag(data, "spam"),
            merged=_flag(data, "merged"),
            agent_started=_flag(data, "agent_started"),
            internal=_flag(data, "internal"),
            messages=tuple(
                _message(m, f"data.messages[{i}]")
                for i, m in enumerate(fields.mappings(data.get("messages"), "data.messages"))
            ),
        )
    ]


def _message(message: Mapping, name: str) -> TicketMessageFact:
    sent_at = fields.timestamp(message.get("sent_at"), f"{name}.sent_at")
    if sent_at is None:
        raise PayloadError(f"{name}.sent_at is required")
    public = _flag(message, "public", name)
    return TicketMessageFact(
        external_id=_required(message, "id", 128, name),
        author_kind=_choice(message, "author", AUTHOR_KINDS, name) or "customer",
        public=True if public is None else public,
        sent_at=sent_at,
        body=_text(message, "body", 10_000, name),
    )


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    return None, None


def _text(data: Mapping, key: str, limit: int, where: str = "data") -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"{where}.{key} must be a string")
    return fields.text(value, f"{where}.{key}", limit)


def _required(data: Mapping, key: str, limit: int, where: str = "data") -> str:
    found = _text(data, key, limit, where)
    if found is None:
        raise PayloadError(f"{where}.{key} is required (at most {limit} characters)")
    return found


def _choice(data: Mapping, key: str, allowed: tuple[str, ...], where: str = "data") -> str | None:
    found = _text(data, key, 32, where)
    if found is not None and found not in allowed:
        raise PayloadError(f"{where}.{key} must be one of {', '.join(allowed)}")
    return found


def _flag(data: Mapping, key: str, where: str = "data") -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise PayloadError(f"{where}.{key} must be true or false")
    return value
