"""AfterShip tracking webhooks (webhook version 2026-07; sources in
tests/fixtures/aftership/README.md).

- `aftership-hmac-sha256`: base64 HMAC-SHA256 of the raw body, keyed with
  the webhook secret as it is (no prefix, no decoding). Nothing time-bound is
  signed, so replays are stopped by deduplication on `event_id`.
- Body: `{event, event_id, is_tracking_first_tag, msg: <Tracking>, ts}`;
  `event` is `tracking_update`, `edd_revise` or `tracking_pending_time`.
- AfterShip retries up to 14 times over about 68 hours and says nothing of
  order, so each fact is stamped with `msg.updated_at`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

from app.clock import parse_timestamp
from app.events import (
    Described,
    Event,
    OrderMatch,
    PayloadError,
    ShipmentSnapshot,
    ShipmentStatus,
    UnsupportedTopic,
    clip,
)

SOURCE = "aftership"
SECRET_REQUIRED = True
TOPICS = frozenset({"tracking_update", "edd_revise", "tracking_pending_time"})

# AfterShip's delivery status tags.
_TAG_STATUS = {
    "Pending": ShipmentStatus.LABEL_CREATED,
    "InfoReceived": ShipmentStatus.LABEL_CREATED,
    "InTransit": ShipmentStatus.IN_TRANSIT,
    "OutForDelivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "AttemptFail": ShipmentStatus.ATTEMPTED,
    "AvailableForPickup": ShipmentStatus.AVAILABLE_FOR_PICKUP,
    "Delivered": ShipmentStatus.DELIVERED,
    "Exception": ShipmentStatus.EXCEPTION,
    # No news for 30 days: the parcel is lost to tracking, which is trouble.
    "Expired": ShipmentStatus.EXCEPTION,
}


def check_secret(secret: str) -> None:
    if len(secret) < 16:
        raise ValueError("an AfterShip webhook secret is at least 16 characters")


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def authenticate(secret: str | None, headers: Mapping[str, str], body: bytes) -> bool:
    signature = headers.get("aftership-hmac-sha256")
    if secret is None or not signature:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode())


def describe(headers: Mapping[str, str], body: bytes, payload: dict) -> Described:
    topic = payload.get("event")
    if topic not in TOPICS:
        raise UnsupportedTopic(f"event {str(topic)[:60]!r} is not handled")
    event_id = payload.get("event_id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 128:
        raise PayloadError("event_id is required")
    ts = payload.get("ts")
    triggered_at = datetime.fromtimestamp(ts, UTC) if isinstance(ts, int) else None
    return Described(topic, event_id, triggered_at)


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    try:
        return [_tracking(payload["msg"], triggered_at)]
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"{topic} payload: {type(exc).__name__}: {exc}") from None


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    order_id = str((payload.get("msg") or {}).get("order_id") or "")
    return None, int(order_id) if order_id.isdigit() else None


def _tracking(msg: dict, triggered_at) -> ShipmentSnapshot:
    stamp = parse_timestamp(msg.get("updated_at")) or triggered_at
    if stamp is None:
        raise PayloadError("tracking without updated_at")
    tag = msg.get("tag")
    status = _TAG_STATUS.get(tag)
    if status is None:
        raise PayloadError(f"unknown tag {tag!r}")
    if tag == "Exception" and msg.get("return_to_sender"):
        status = ShipmentStatus.RETURNED
    tracking_id = clip(msg["id"], 64)
    if tracking_id is None:
        raise PayloadError("msg.id is empty")
    order_id = str(msg.get("order_id") or "")
    tracking_number = clip(msg.get("tracking_number"), 128)
    scans = [parse_timestamp(c.get("checkpoint_time")) for c in msg.get("checkpoints") or ()]
    return ShipmentSnapshot(
        source=SOURCE,
        external_id=tracking_id,
        status=status,
        updated_at=stamp,
        match=OrderMatch(
            shopify_id=int(order_id) if order_id.isdigit() else None,
            name=clip(msg.get("order_number"), 64),
            tracking_number=tracking_number,
        ),
        status_detail=clip(msg.get("subtag_message"), 1000),
        carrier=clip(msg.get("slug"), 128),
        tracking_number=tracking_number,
        tracking_url=clip(msg.get("courier_tracking_link"), 2000),
        shipped_at=parse_timestamp(msg.get("shipment_pickup_date")),
        estimated_delivery_at=_estimated_delivery(msg),
        delivered_at=parse_timestamp(msg.get("shipment_delivery_date")),
        last_scan_at=max((s for s in scans if s), default=None),
    )


def _estimated_delivery(msg: dict) -> datetime | None:
    """The newest estimate AfterShip has: its revised one, then its own EDD,
    then the carrier's. Dates without a time are taken as that day, UTC."""
    latest = msg.get("latest_estimated_delivery") or {}
    candidates = (
        latest.get("datetime"),
        (msg.get("aftership_estimated_delivery_date") or {}).get("estimated_delivery_date"),
        (msg.get("courier_estimated_delivery_date") or {}).get("estimated_delivery_date"),
    )
    for value in candidates:
        if value:
            return parse_timestamp(value if "T" in value else f"{value}T00:00:00+00:00")
    return None
