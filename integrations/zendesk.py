"""Zendesk webhooks subscribed to ticket events (developer.zendesk.com,
"Ticket events"; tests/fixtures/zendesk/README.md).

Signature ("Verifying webhook authenticity"): `X-Zendesk-Webhook-Signature`
is base64(HMAC-SHA256(secret, timestamp + raw body)), the timestamp being
the `X-Zendesk-Webhook-Signature-Timestamp` header as sent (ISO 8601). We
refuse a timestamp further than `TOLERANCE` from our clock (a replay).

Every event carries the ticket as `detail` (id, status, subject, tags,
requester_id, submitter_id, assignee_id, priority, type, via.channel,
created_at, updated_at), the event's id (our dedupe key), and in `event`
what changed: `current`/`previous` for a status change, the comment (id,
body, is_public, author.is_staff) for `comment_added`.

What the events lack: the requester's email and phone (only
`requester_id`) and the assignee's name (only `assignee_id`, which we keep
as the agent, "zendesk:<id>"). The email is mapped by a second webhook the
merchant attaches to a Zendesk trigger ("Notify by webhook"), whose JSON
body is filled by Zendesk placeholders: `{"type":
"careloop:ticket.requester", "id": "{{ticket.id}}-{{ticket.updated_at_with_timestamp}}",
"detail": {"id": "{{ticket.id}}", "requester_email":
"{{ticket.requester.email}}", "requester_phone": "{{ticket.requester.phone}}"}}`,
signed the same way. It is applied at its signature time. Until it
arrives the ticket has no customer (and so no survey yet). Fetching users
from the Zendesk API would need API credentials per shop; we do not ask for
them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from app.clock import parse_timestamp
from app.events import (
    Described,
    Event,
    PayloadError,
    TicketMessageFact,
    TicketSnapshot,
    UnsupportedTopic,
)
from integrations import fields
from integrations import helpdesk_fields as hf

SOURCE = "zendesk"
KIND = "helpdesk"
SECRET_REQUIRED = True
SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
TOLERANCE = timedelta(minutes=15)
PREFIX = "zen:event-type:ticket."
REQUESTER = "careloop:ticket.requester"
# Event types whose `detail` we apply; any other ticket event is refused
# (422) so that the merchant subscribes to these only.
EVENTS = frozenset(
    PREFIX + name
    for name in (
        "created", "status_changed", "comment_added", "agent_assignment_changed",
        "tags_changed", "subject_changed", "priority_changed", "merged", "marked_as_spam",
    )
)  # fmt: skip
STATUSES = {"new": "open", "open": "open", "hold": "open", "pending": "pending",
            "solved": "solved", "closed": "closed"}  # fmt: skip
CHANNELS = {
    "email": "email", "mail": "email", "web": "email", "web_form": "email",
    "chat": "chat", "native_messaging": "chat", "messaging": "chat", "chat_transcript": "chat",
    "sms": "sms", "voice": "phone", "phone": "phone", "phone_call_inbound": "phone",
    "phone_call_outbound": "phone", "facebook": "social", "twitter": "social",
    "instagram_dm": "social", "whatsapp": "social", "line": "social", "wechat": "social",
}  # fmt: skip


def check_secret(secret: str) -> None:
    if len(secret) < 16:
        raise ValueError("paste the webhook's signing secret (Admin Center → Webhooks)")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def authenticate(secret: str | None, headers: Mapping[str, str], body: bytes, now=None) -> bool:
    signature, stamp = headers.get(SIGNATURE, ""), headers.get(TIMESTAMP, "")
    if secret is None or not signature or not stamp or len(stamp) > 40:
        return False
    try:
        signed_at = parse_timestamp(stamp)
    except ValueError:
        return False
    now = now or datetime.now(UTC)
    if signed_at is None or abs(now - signed_at) > TOLERANCE:
        return False
    return hmac.compare_digest(sign(secret, stamp, body).encode(), signature.encode())


def describe(headers: Mapping[str, str], body: bytes, payload: dict) -> Described:
    kind = payload.get("type")
    if not isinstance(kind, str) or (kind not in EVENTS and kind != REQUESTER):
        raise UnsupportedTopic(f"type {str(kind)[:60]!r} is not handled")
    signed_at = parse_timestamp(headers.get(TIMESTAMP, ""))
    parse(kind, payload, signed_at)
    return Described(kind, hf.required_ident(payload.get("id"), "id"), signed_at)


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    detail = fields.mapping(payload.get("detail"), "detail")
    external_id = hf.required_ident(detail.get("id"), "detail.id")
    if topic == REQUESTER:
        if triggered_at is None:
            raise PayloadError("the requester mapping needs its signature time")
        return [
            TicketSnapshot(
                source=SOURCE, external_id=external_id, updated_at=triggered_at,
                requester_email=hf.email(detail.get("requester_email"), "detail.requester_email"),
                requester_phone=hf.phone(detail.get("requester_phone"), "detail.requester_phone"),
            )
        ]  # fmt: skip
    updated_at = hf.utc_time(detail.get("updated_at"), "detail.updated_at") or hf.utc_time(
        payload.get("time"), "time"
    )
    if updated_at is None:
        raise PayloadError("missing detail.updated_at")
    event = fields.mapping(payload.get("event"), "event")
    status = _status(detail.get("status"), "detail.status")
    if topic == PREFIX + "status_changed" and isinstance(event.get("current"), str):
        status = _status(event.get("current"), "event.current")
    channel = (fields.text(fields.mapping(detail.get("via"), "detail.via").get("channel"),
                           "detail.via.channel", 64) or "").lower()  # fmt: skip
    requester = hf.ident(detail.get("requester_id"), "detail.requester_id")
    submitter = hf.ident(detail.get("submitter_id"), "detail.submitter_id")
    assignee = hf.ident(detail.get("assignee_id"), "detail.assignee_id")
    messages = ()
    comment = fields.mapping(event.get("comment"), "event.comment")
    if topic == PREFIX + "comment_added" and comment:
        author = fields.mapping(comment.get("author"), "event.comment.author")
        public = hf.flag(comment.get("is_public"), "event.comment.is_public")
        messages = (
            TicketMessageFact(
                external_id=hf.required_ident(comment.get("id"), "event.comment.id"),
                author_kind="agent"
                if hf.flag(author.get("is_staff"), "event.comment.author.is_staff")
                else "customer",
                public=True if public is None else public,
                sent_at=hf.utc_time(payload.get("time"), "time") or updated_at,
                body=fields.clip(comment.get("body"), "event.comment.body", 10_000),
            ),
        )
    return [
        TicketSnapshot(
            source=SOURCE,
            external_id=external_id,
            updated_at=updated_at,
            status=status,
            channel=CHANNELS.get(channel, "other") if channel else None,
            opened_at=hf.utc_time(detail.get("created_at"), "detail.created_at"),
            subject=fields.clip(detail.get("subject"), "detail.subject", 1000),
            assignee=f"zendesk:{assignee}" if assignee and assignee != "0" else None,
            tier=(fields.text(detail.get("priority"), "detail.priority", 32) or "").lower() or None,
            tags=hf.tags(detail.get("tags"), "detail.tags"),
            ticket_type=fields.text(detail.get("type"), "detail.type", 32),
            spam=True if topic == PREFIX + "marked_as_spam" else None,
            merged=True if topic == PREFIX + "merged" else None,
            # An agent opened it for the customer (the submitter is not the requester).
            agent_started=(submitter != requester) if submitter and requester else None,
            internal=(hf.flag(detail.get("is_public"), "detail.is_public") is False) or None,
            messages=messages,
        )
    ]


def _status(value: object, name: str) -> str | None:
    raw = (fields.text(value, name, 32) or "").lower()
    if raw and raw not in STATUSES:
        raise PayloadError(f"{name} {raw[:32]!r} is not a Zendesk ticket status")
    return STATUSES.get(raw)


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    return None, None  # Zendesk names no Shopify customer or order by id
