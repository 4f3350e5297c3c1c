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
from datetime import datetime

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

SOURCE = "aftership"
KIND = "fulfillment"  # which kind of provider (app.providers)
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
    if not isinstance(topic, str) or topic not in TOPICS:
        raise UnsupportedTopic(f"event {str(topic)[:60]!r} is not handled")
    event_id = payload.get("event_id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 128 or "\x00" in event_id:
        raise PayloadError("event_id is required (at most 128 characters)")
    return Described(topic, event_id, _sent_at(payload.get("ts")))


def _sent_at(ts: object) -> datetime | None:
    """`ts`, Unix seconds, when it is a number."""
    if isinstance(ts, bool) or not isinstance(ts, int):
        return None
    try:
        return from_unix_seconds(ts)
    except ValueError as exc:  # past year 9999, or before year 1
        raise PayloadError(f"ts: {exc}") from None


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    return [_tracking(fields.mapping(payload.get("msg"), "msg"), triggered_at)]


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    return None, fields.reference(fields.mapping(payload.get("msg"), "msg").get("order_id"))


def _tracking(msg: Mapping, triggered_at) -> ShipmentSnapshot:
    stamp = fields.timestamp(msg.get("updated_at"), "msg.updated_at") or triggered_at
    if stamp is None:
        raise PayloadError("tracking without updated_at")
    tag = fields.text(msg.get("tag"), "msg.tag", 32)
    status = _TAG_STATUS.get(tag)
    if status is None:
        raise PayloadError(f"unknown tag {tag!r}")
    if tag == "Exception" and msg.get("return_to_sender"):
        status = ShipmentStatus.RETURNED
    tracking_id = fields.text(msg.get("id"), "msg.id", 64)
    if tracking_id is None:
        raise PayloadError("msg.id is empty")
    tracking_number = fields.text(msg.get("tracking_number"), "msg.tracking_number", 128)
    checkpoints = fields.mappings(msg.get("checkpoints"), "msg.checkpoints")
    scans = [
        fields.timestamp(c.get("checkpoint_time"), f"msg.checkpoints[{i}].checkpoint_time")
        for i, c in enumerate(checkpoints)
    ]
    return ShipmentSnapshot(
        source=SOURCE,
        external_id=tracking_id,
        status=status,
        updated_at=stamp,
        match=OrderMatch(
            shopify_id=fields.reference(msg.get("order_id")),
            name=fields.text(msg.get("order_number"), "msg.order_number", 64),
            tracking_number=tracking_number,
        ),
        status_detail=fields.clip(msg.get("subtag_message"), "msg.subtag_message", 1000),
        carrier=fields.text(msg.get("slug"), "msg.slug", 128),
        tracking_number=tracking_number,
        tracking_url=fields.clip(
            msg.get("courier_tracking_link"), "msg.courier_tracking_link", 2000
        ),
        shipped_at=fields.timestamp(msg.get("shipment_pickup_date"), "msg.shipment_pickup_date"),
        estimated_delivery_at=_estimated_delivery(msg),
        delivered_at=fields.timestamp(
            msg.get("shipment_delivery_date"), "msg.shipment_delivery_date"
        ),
        last_scan_at=max((s for s in scans if s), default=None),
    )


def _estimated_delivery(msg: Mapping) -> datetime | None:
    """The newest estimate AfterShip has: its revised one, then its own EDD,
    then the carrier's. Dates without a time are taken as that day, UTC."""
    candidates = (
        ("latest_estimated_delivery", "datetime"),
        ("aftership_estimated_delivery_date", "estimated_delivery_date"),
        ("courier_estimated_delivery_date", "estimated_delivery_date"),
    )
    for outer, inner in candidates:
        name = f"msg.{outer}.{inner}"
        value = fields.text(fields.mapping(msg.get(outer), f"msg.{outer}").get(inner), name, 64)
        if value:
            return fields.timestamp(value if "T" in value else f"{value}T00:00:00+00:00", name)
    return None
