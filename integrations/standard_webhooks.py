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

`status` is one of `app.order_state.ShipmentStatus`; `order` needs a
`shopify_id` or a `name` (a `tracking_number` known to us also matches);
timestamps are ISO-8601 with an offset.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime

from standardwebhooks import Webhook, WebhookVerificationError

from app.clock import parse_timestamp
from app.events import (
    Described,
    Event,
    OrderMatch,
    PayloadError,
    ShipmentSnapshot,
    ShipmentStatus,
    UnsupportedTopic,
)

SOURCE = "standard"
SECRET_REQUIRED = True
TOPICS = frozenset({"shipment.updated"})
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
    return datetime.fromtimestamp(int(raw), UTC) if raw.isdigit() else None


def describe(headers: Mapping[str, str], body: bytes, payload: dict) -> Described:
    topic = payload.get("type")
    if topic not in TOPICS:
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
    shipment_id = data.get("shipment_id")
    try:
        status = ShipmentStatus(data.get("status"))
    except ValueError:
        raise PayloadError(
            f"data.status must be one of {', '.join(s.value for s in ShipmentStatus)}"
        ) from None
    try:
        stamp = parse_timestamp(payload.get("timestamp"))
        times = {name: parse_timestamp(data.get(name)) for name in _TIMES}
        shopify_id = int(order["shopify_id"]) if order.get("shopify_id") else None
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"a timestamp or id is malformed: {exc}") from None
    if stamp is None:
        raise PayloadError("timestamp is required (ISO-8601)")
    tracking = _text(data, "tracking_number")
    return [
        ShipmentSnapshot(
            source=SOURCE,
            external_id=_identifier(shipment_id),
            status=status,
            updated_at=stamp,
            match=OrderMatch(shopify_id, _text(order, "name", 64), tracking),
            status_detail=_text(data, "detail", 1000),
            carrier=_text(data, "carrier"),
            tracking_number=tracking,
            tracking_url=_text(data, "tracking_url", 2000),
            **times,
        )
    ]


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    order = (payload.get("data") or {}).get("order") or {}
    value = order.get("shopify_id")
    return None, int(value) if isinstance(value, int) or str(value).isdigit() else None


def _text(data: dict, key: str, limit: int = 128) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{key} must be a string")
    if len(value) > limit:
        raise PayloadError(f"{key} is longer than {limit} characters")
    return value.strip() or None


def _identifier(value) -> str:
    text = str(value).strip() if isinstance(value, str | int) else ""
    if not text or len(text) > 64:
        raise PayloadError("data.shipment_id is required (at most 64 characters)")
    return text
