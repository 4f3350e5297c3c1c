"""ShipBob fulfillment webhooks, in both subscription styles ShipBob documents
(see tests/fixtures/shipbob/README.md for the sources):

- Legacy (API 1.0/2.0): topics such as `order_shipped`, named in the
  `shipbob-topic` header. ShipBob signs nothing and sends no delivery id, so
  the connection's URL carries a long random key that only ShipBob and we
  know (we keep its SHA-256): that key is the authentication, and a hash of
  topic + body is the dedupe key (a retry repeats the same bytes).
- Dated API (2025-07 and later): topics such as `order.shipment.delivered`
  in `x-webhook-topic`, signed the Standard Webhooks way; once a signing
  secret is configured for the connection, unsigned deliveries are refused.

Bodies are the bare resource: an Order (with its shipments) for the
order-level topics, a Shipment for the shipment topics, a tracking record for
`order.shipment.tracking.updated`. ShipBob does not guarantee order, so every
fact is stamped with the body's own `last_update_at` / `last_updated`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from app.events import (
    Described,
    Event,
    OrderMatch,
    PayloadError,
    ShipmentSnapshot,
    ShipmentStatus,
    UnsupportedTopic,
)
from integrations import fields, standard_webhooks

SOURCE = "shipbob"
KIND = "fulfillment"  # which kind of provider (app.providers)
SECRET_REQUIRED = False
check_secret = standard_webhooks.check_secret

ORDER_TOPICS = frozenset({"order_shipped", "order.shipped", "order.delivered"})
SHIPMENT_TOPIC_STATUS = {
    "shipment_delivered": ShipmentStatus.DELIVERED,
    "order.shipment.delivered": ShipmentStatus.DELIVERED,
    "shipment_exception": ShipmentStatus.EXCEPTION,
    "order.shipment.exception": ShipmentStatus.EXCEPTION,
    "shipment_onhold": ShipmentStatus.ON_HOLD,
    "order.shipment.on_hold": ShipmentStatus.ON_HOLD,
    "shipment_cancelled": ShipmentStatus.CANCELLED,
    "order.shipment.cancelled": ShipmentStatus.CANCELLED,
}
TRACKING_TOPIC = "order.shipment.tracking.updated"
TOPICS = ORDER_TOPICS | set(SHIPMENT_TOPIC_STATUS) | {TRACKING_TOPIC}

# Shipment `status` inside an Order body: only parcels that left the
# warehouse are shipments to us; the others are still being picked.
_SHIPMENT_STATUS = {
    "LabeledCreated": ShipmentStatus.SHIPPED,
    "Completed": ShipmentStatus.SHIPPED,
    "Exception": ShipmentStatus.EXCEPTION,
    "OnHold": ShipmentStatus.ON_HOLD,
    "Cancelled": ShipmentStatus.CANCELLED,
}
# Tracking `status` of the tracking record.
_TRACKING_STATUS = {
    "LabelCreated": ShipmentStatus.LABEL_CREATED,
    "InTransit": ShipmentStatus.IN_TRANSIT,
    "OutForDelivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "DeliveryAttempted": ShipmentStatus.ATTEMPTED,
    "AttemptFail": ShipmentStatus.ATTEMPTED,
    "AvailableForPickup": ShipmentStatus.AVAILABLE_FOR_PICKUP,
    "Delivered": ShipmentStatus.DELIVERED,
    "Exception": ShipmentStatus.EXCEPTION,
    "ReturnToSender": ShipmentStatus.RETURNED,
    "Returned": ShipmentStatus.RETURNED,
}


def authenticate(secret: str | None, headers: Mapping[str, str], body: bytes) -> bool:
    if "webhook-signature" in headers or secret is not None:
        return secret is not None and standard_webhooks.verify(secret, headers, body)
    return True  # legacy style: the URL key, checked before, is the credential


def describe(headers: Mapping[str, str], body: bytes, payload: dict) -> Described:
    topic = headers.get("x-webhook-topic") or headers.get("shipbob-topic")
    if not topic:
        raise PayloadError("missing header x-webhook-topic (or shipbob-topic)")
    if topic not in TOPICS:
        raise UnsupportedTopic(f"topic {topic[:60]!r} is not handled")
    if "webhook-id" in headers:
        return Described(topic, headers["webhook-id"], standard_webhooks.signed_at(headers))
    digest = hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()
    return Described(topic, f"sha256:{digest}")


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    if topic in ORDER_TOPICS:
        delivered = topic == "order.delivered"
        shipments = fields.mappings(payload.get("shipments"), "shipments")
        return [
            event
            for index, shipment in enumerate(shipments)
            if (event := _shipment(shipment, payload, f"shipments[{index}]", delivered=delivered))
            is not None
        ]
    if topic in SHIPMENT_TOPIC_STATUS:
        return [_shipment(payload, payload, "shipment", status=SHIPMENT_TOPIC_STATUS[topic])]
    if topic == TRACKING_TOPIC:
        return [_tracking(payload)]
    raise PayloadError(f"unsupported topic {topic}")


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    return None, fields.reference(payload.get("reference_id"))


def _match(body: Mapping, tracking_number: str | None) -> OrderMatch:
    return OrderMatch(
        shopify_id=fields.reference(body.get("reference_id")),
        name=fields.text(body.get("order_number"), "order_number", 64),
        tracking_number=tracking_number,
    )


def _shipment(
    shipment: Mapping,
    order: Mapping,
    name: str,
    *,
    status: ShipmentStatus | None = None,
    delivered: bool = False,
) -> ShipmentSnapshot | None:
    if delivered:
        status = ShipmentStatus.DELIVERED
    if status is None:
        status = _SHIPMENT_STATUS.get(fields.text(shipment.get("status"), f"{name}.status", 32))
        if status is None:
            return None  # still in the warehouse: not a parcel yet
    stamp = (
        fields.timestamp(shipment.get("last_update_at"), f"{name}.last_update_at")
        or fields.timestamp(
            shipment.get("last_tracking_update_at"), f"{name}.last_tracking_update_at"
        )
        or fields.timestamp(shipment.get("created_date"), f"{name}.created_date")
    )
    if stamp is None:
        raise PayloadError("shipment without last_update_at or created_date")
    tracking = fields.mapping(shipment.get("tracking"), f"{name}.tracking")
    tracking_number = fields.text(
        tracking.get("tracking_number"), f"{name}.tracking.tracking_number", 128
    )
    details = fields.mappings(shipment.get("status_details"), f"{name}.status_details")
    detail = "; ".join(
        f"{fields.clip(d.get('name'), 'status_details.name', 200)}: "
        f"{fields.clip(d.get('description'), 'status_details.description', 1000)}"
        for d in details
    )
    return ShipmentSnapshot(
        source=SOURCE,
        external_id=str(fields.identifier(shipment.get("id"), f"{name}.id")),
        status=status,
        updated_at=stamp,
        match=_match(shipment if shipment.get("reference_id") else order, tracking_number),
        status_detail=detail[:1000] or None,
        carrier=fields.text(tracking.get("carrier"), f"{name}.tracking.carrier", 128),
        tracking_number=tracking_number,
        tracking_url=fields.clip(
            tracking.get("tracking_url"), f"{name}.tracking.tracking_url", 2000
        ),
        promised_ship_at=fields.timestamp(
            shipment.get("estimated_fulfillment_date"), f"{name}.estimated_fulfillment_date"
        ),
        shipped_at=fields.timestamp(
            shipment.get("actual_fulfillment_date"), f"{name}.actual_fulfillment_date"
        )
        or fields.timestamp(tracking.get("shipping_date"), f"{name}.tracking.shipping_date"),
        delivered_at=fields.timestamp(shipment.get("delivery_date"), f"{name}.delivery_date"),
    )


def _tracking(payload: dict) -> ShipmentSnapshot:
    stamp = fields.timestamp(payload.get("last_updated"), "last_updated")
    if stamp is None:
        raise PayloadError("tracking update without last_updated")
    history = [
        fields.timestamp(h.get("timestamp"), f"history[{i}].timestamp")
        for i, h in enumerate(fields.mappings(payload.get("history"), "history"))
    ]
    tracking_number = fields.text(
        payload.get("carrier_tracking_number") or payload.get("tracking_id"),
        "carrier_tracking_number",
        128,
    )
    status = _TRACKING_STATUS.get(
        fields.text(payload.get("status"), "status", 32), ShipmentStatus.IN_TRANSIT
    )
    return ShipmentSnapshot(
        source=SOURCE,
        external_id=str(fields.identifier(payload.get("shipment_id"), "shipment_id")),
        status=status,
        updated_at=stamp,
        match=_match(payload, tracking_number),
        status_detail=fields.clip(
            payload.get("carrier_message") or payload.get("message"), "carrier_message", 1000
        ),
        carrier=fields.text(payload.get("carrier"), "carrier", 128),
        tracking_number=tracking_number,
        tracking_url=fields.clip(payload.get("public_tracking_url"), "public_tracking_url", 2000),
        estimated_delivery_at=fields.timestamp(payload.get("eta"), "eta"),
        last_scan_at=max((h for h in history if h), default=None),
        delivered_at=stamp if status == ShipmentStatus.DELIVERED else None,
    )
