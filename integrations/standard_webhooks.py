"""Standard Webhooks (standardwebhooks.com): the signing scheme, and our
generic shipment format for any fulfillment or tracking system.

Signature: `webhook-id`, `webhook-timestamp` (Unix seconds) and
`webhook-signature` ("v1,<base64>", several separated by spaces during a key
rotation): HMAC-SHA256 over "<id>.<timestamp>.<raw body>", keyed with the
base64 bytes after `whsec_`; deliveries older or newer than five minutes are
refused (replay). Verified with the `standardwebhooks` package.

The generic format (`POST /webhooks/fulfillment/standard?key=...`), one
shipment's facts as the sender knows them at `timestamp`:

    {"type": "shipment.updated",
     "timestamp": "2026-11-21T09:05:00Z",
     "data": {"shipment_id": "PKG-1",
              "order": {"shopify_id": 5001001, "name": "#1001"},
              "status": "in_transit",
              "detail": "Departed facility", "carrier": "UPS",
              "tracking_number": "1Z...", "tracking_url": "https://...",
              "promised_ship_at": "...", "shipped_at": "...",
              "estimated_delivery_at": "...", "delivered_at": "...",
              "last_scan_at": "..."}}

`status` is one of `app.events.ShipmentStatus`; `order` needs a
`shopify_id` or a `name` (a `tracking_number` known to us also matches);
timestamps are ISO-8601 with an offset.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime

from standardwebhooks import Webhook, WebhookVerificationError

from app.clock import from_unix_seconds
from app.events import (
    Described,
    Event,
    OrderMatch,
    PayloadError,
    ShipmentSnapshot,
    ShipmentStatus,
    UnsupportedTopic,
)
from integrations import fields

SOURCE = "standard"
KIND = "fulfillment"  # which kind of provider (app.providers)
SECRET_REQUIRED = True
TOPICS = frozenset({"shipment.updated"})
_STATUSES = tuple(status.value for status in ShipmentStatus)
_TIMES = ("promised_ship_at", "shipped_at", "estimated_delivery_at", "delivered_at", "last_scan_at")


def check_secret(secret: str) -> None:
    """Refuse a secret that is not `whsec_` + base64 of at least 24 bytes."""
    if not secret.startswith("whsec_"):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("the part after whsec_ must be base64") from None
    if len(key) < 24:
        raise ValueError("the secret must be at least 24 bytes (before base64)")


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError):  # ValueError: malformed header or body
        return False
    return True


def sign(secret: str, message_id: str, moment: datetime, body: bytes) -> dict[str, str]:
    """The three headers for `body`, as a sender computes them."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body.decode()),
    }


def authenticate(secret: str | None, headers: Mapping[str, str], body: bytes) -> bool:
    return secret is not None and verify(secret, headers, body)


def signed_at(headers: Mapping[str, str]) -> datetime | None:
    raw = headers.get("webhook-timestamp", "")
    if not (raw.isascii() and raw.isdigit()):
        return None
    try:
        return from_unix_seconds(int(raw))
    except ValueError as exc:
        raise PayloadError(f"webhook-timestamp: {exc}") from None


def describe(headers: Mapping[str, str], body: bytes, payload: dict) -> Described:
    topic = payload.get("type")
    if not isinstance(topic, str) or topic not in TOPICS:
        raise UnsupportedTopic(f"type {str(topic)[:60]!r} is not handled")
    parse(topic, payload, None)  # our own format: refuse what we could never apply
    return Described(topic, headers["webhook-id"], signed_at(headers))


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadError("data must be an object")
    order = data.get("order")
    if not isinstance(order, dict) or not (order.get("shopify_id") or order.get("name")):
        raise PayloadError("data.order needs shopify_id or name")
    status = data.get("status")
    if not isinstance(status, str) or status not in _STATUSES:
        raise PayloadError(f"data.status must be one of {', '.join(_STATUSES)}")
    stamp = fields.timestamp(payload.get("timestamp"), "timestamp")
    if stamp is None:
        raise PayloadError("timestamp is required (ISO-8601)")
    times = {name: fields.timestamp(data.get(name), f"data.{name}") for name in _TIMES}
    tracking = _text(data, "tracking_number")
    return [
        ShipmentSnapshot(
            source=SOURCE,
            external_id=_identifier(data.get("shipment_id")),
            status=ShipmentStatus(status),
            updated_at=stamp,
            match=OrderMatch(
                fields.optional_identifier(order.get("shopify_id"), "data.order.shopify_id"),
                fields.text(order.get("name"), "data.order.name", 64),
                tracking,
            ),
            status_detail=_text(data, "detail", 1000),
            carrier=_text(data, "carrier"),
            tracking_number=tracking,
            tracking_url=_text(data, "tracking_url", 2000),
            **times,
        )
    ]


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    order = fields.mapping(fields.mapping(payload.get("data"), "data").get("order"), "data.order")
    return None, fields.optional_identifier(order.get("shopify_id"), "data.order.shopify_id")


def _text(data: dict, key: str, limit: int = 128) -> str | None:
    """Our own format is strict: a string, never a number, within `limit`."""
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"data.{key} must be a string")
    return fields.text(value, f"data.{key}", limit)


def _identifier(value) -> str:
    text = None if isinstance(value, bool) else fields.text(value, "data.shipment_id", 64)
    if text is None:
        raise PayloadError("data.shipment_id is required (at most 64 characters)")
    return text
