"""What the outbox hands to a channel provider, and what it gets back.

A provider sends rendered messages and classifies the outcome; it knows
nothing of shops, consent or retries (the outbox decides those). Every
network call a provider makes has an explicit timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    SENT = "sent"  # accepted by the provider; `provider_id` identifies it
    TRANSIENT = "transient"  # try again later (timeouts, 4xx SMTP, 429/5xx HTTP)
    PERMANENT = "permanent"  # never retry (invalid address, hard bounce, unsubscribed)


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_id: str | None = None
    reason: str | None = None  # human-readable, safe to store (no secrets)
    error_code: str | None = None  # the provider's own code, e.g. Twilio "21610"
    # The recipient told the provider to stop (Twilio 21610, a suppressed
    # address): the outbox records an opt-out for the channel.
    unsubscribed: bool = False


@dataclass(frozen=True)
class EmailMessage:
    message_id: str  # RFC 5322 Message-ID, e.g. "<n123.shop4@careloop.example>"
    sender: str  # address
    sender_name: str
    to: str
    subject: str
    html: str  # CSS already inlined
    text: str
    headers: dict[str, str] = field(default_factory=dict)  # e.g. List-Unsubscribe
    reply_to: str | None = None


@dataclass(frozen=True)
class SmsMessage:
    to: str  # E.164
    sender: str  # E.164 number or a messaging service SID ("MG...")
    body: str
    status_callback: str | None = None


class EmailProvider(Protocol):
    name: str

    def send_batch(self, messages: list[EmailMessage]) -> list[SendResult]:
        """Send several messages (over one connection where the transport has
        connections); one result per message, in order. Never raises for a
        per-message failure; raises only for a bug."""


class SmsProvider(Protocol):
    name: str

    def send(self, message: SmsMessage) -> SendResult: ...
