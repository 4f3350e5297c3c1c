"""A test message a merchant sends themselves from the settings page: the
shipping message with sample data, through the outbox and the shop's real
channel provider, so that what arrives is what customers would get."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from app.email_address import sender_problem
from app.models import Shop
from notifications import outbox, rendering
from notifications.phone import to_e164

KIND = "shipping"


class SampleMessageError(ValueError):
    """The recipient cannot receive a test message; the text says why."""


def queue_sample_message(
    session: Session, shop: Shop, channel: str, recipient: str, now: datetime
) -> str:
    """Queue the test message and return the normalised recipient. The
    caller commits; a worker sends it."""
    recipient = recipient.strip()
    if channel == "email":
        if not recipient or sender_problem(recipient):
            raise SampleMessageError("an email address such as you@shop.com")
    elif channel == "sms":
        number = to_e164(recipient, None)
        if number is None:
            raise SampleMessageError("a phone number with its country code, such as +34600111222")
        recipient = number
    else:
        raise SampleMessageError("email or sms")
    outbox.enqueue(
        session,
        shop_id=shop.id,
        key=f"test:{channel}:{recipient}:{now.isoformat()}"[:255],
        kind=KIND,
        category="transactional",
        channel=channel,
        recipient=recipient,
        locale=shop.locale,
        context=rendering.sample_context(KIND) | {"shop_name": shop.name},
        now=now,
    )
    return recipient
