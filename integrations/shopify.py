"""Shopify: webhook signatures, topics, and payloads turned into domain events.

Formats relied on (see tests/fixtures/shopify/README.md for the sources):
- Every webhook carries `X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw
  request body keyed with the app's client secret, plus `X-Shopify-Topic`,
  `X-Shopify-Shop-Domain`, `X-Shopify-Webhook-Id` (one delivery),
  `X-Shopify-Event-Id` (one event, shared by repeated deliveries of it),
  `X-Shopify-Triggered-At` and `X-Shopify-API-Version`.
- Payloads are the REST Admin resources (Order, Fulfillment, Customer, Shop).
  Since API 2025-01 customer payloads no longer carry marketing consent; it
  comes in `customers_email_marketing_consent/update` and
  `customers_marketing_consent/update` (SMS).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from app.clock import parse_timestamp
from app.events import (
    BulkOperationFinished,
    ConsentChange,
    CustomerDataRequest,
    CustomerRedaction,
    CustomerSnapshot,
    Event,
    OrderSnapshot,
    PayloadError,
    ShipmentSnapshot,
    ShipmentStatus,
    ShopRedaction,
    ShopUninstalled,
)

SOURCE = "shopify"

ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
    }
)
FULFILLMENT_TOPICS = frozenset({"fulfillments/create", "fulfillments/update"})
CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})
CONSENT_TOPICS = frozenset(
    {"customers_email_marketing_consent/update", "customers_marketing_consent/update"}
)
# Mandatory privacy webhooks; Shopify sends shop/redact 48 hours after
# uninstall, so these are accepted for uninstalled shops too.
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
SUPPORTED_TOPICS = (
    ORDER_TOPICS
    | FULFILLMENT_TOPICS
    | CUSTOMER_TOPICS
    | CONSENT_TOPICS
    | COMPLIANCE_TOPICS
    | {"app/uninstalled", "bulk_operations/finish"}
)


def sign(secret: str, body: bytes) -> str:
    """The `X-Shopify-Hmac-Sha256` value for `body`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_webhook(secret: str, body: bytes, signature: str | None) -> bool:
    """Check the signature over the raw body, in constant time."""
    if not signature:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode())


_SHOP_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,59}\.myshopify\.com")


def is_shop_domain(domain: str) -> bool:
    """Only `<name>.myshopify.com`, the form Shopify puts in its headers."""
    return _SHOP_DOMAIN.fullmatch(domain) is not None


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    """Turn one webhook payload into the domain events it carries."""
    try:
        if topic in ORDER_TOPICS:
            return [_order(payload)]
        if topic in FULFILLMENT_TOPICS:
            return [_fulfillment(payload, _int(payload["order_id"]))]
        if topic in CUSTOMER_TOPICS:
            return [_customer(payload, full=True)]
        if topic == "customers_email_marketing_consent/update":
            return [_consent(payload, "email", triggered_at)]
        if topic == "customers_marketing_consent/update":
            return [_consent(payload, "sms", triggered_at)]
        if topic == "app/uninstalled":
            return [ShopUninstalled()]
        if topic == "customers/redact":
            return [
                CustomerRedaction(
                    customer_shopify_id=_customer_ref(payload),
                    order_shopify_ids=_ids(payload.get("orders_to_redact")),
                )
            ]
        if topic == "customers/data_request":
            request = payload.get("data_request") or {}
            return [
                CustomerDataRequest(
                    request_id=_int(request["id"]) if request.get("id") else None,
                    customer_shopify_id=_customer_ref(payload),
                    order_shopify_ids=_ids(payload.get("orders_requested")),
                )
            ]
        if topic == "shop/redact":
            return [ShopRedaction()]
        if topic == "bulk_operations/finish":
            return [
                BulkOperationFinished(
                    operation_id=str(payload["admin_graphql_api_id"]),
                    status=str(payload["status"]).lower(),
                    error_code=payload.get("error_code"),
                )
            ]
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise PayloadError(f"{topic} payload: {type(exc).__name__}: {exc}") from None
    raise PayloadError(f"unsupported topic {topic}")


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    """(customer id, order id) a payload concerns, for finding it at redaction.

    Read from the same fields `parse` reads, and never guessed: a message
    whose references cannot be read fails (PayloadError, a visible dead
    letter) rather than be stored where redaction would not find it."""
    try:
        if topic in ORDER_TOPICS:
            customer = payload.get("customer") or {}
            return _opt_int(customer.get("id")), _opt_int(payload.get("id"))
        if topic in FULFILLMENT_TOPICS:
            return None, _opt_int(payload.get("order_id"))
        if topic in CUSTOMER_TOPICS:
            return _opt_int(payload.get("id")), None
        if topic == "customers_email_marketing_consent/update":
            return _opt_int(payload.get("customer_id")), None
        if topic == "customers_marketing_consent/update":
            return _opt_int(payload.get("id")), None
        if topic in ("customers/redact", "customers/data_request"):
            return _customer_ref(payload), None
    except (AttributeError, TypeError, ValueError) as exc:
        raise PayloadError(f"{topic} references: {type(exc).__name__}: {exc}") from None
    return None, None


def shipment_status(fulfillment_status: str | None, shipment_status: str | None) -> ShipmentStatus:
    """Map a Fulfillment's `status` and `shipment_status` onto ours."""
    if fulfillment_status in ("cancelled", "error", "failure"):
        return ShipmentStatus.CANCELLED
    if fulfillment_status in ("pending", "open"):
        return ShipmentStatus.LABEL_CREATED
    return _SHIPMENT_STATUS.get(shipment_status or "", ShipmentStatus.SHIPPED)


# Fulfillment `shipment_status` values documented for the REST Fulfillment resource.
_SHIPMENT_STATUS = {
    "label_printed": ShipmentStatus.LABEL_CREATED,
    "label_purchased": ShipmentStatus.LABEL_CREATED,
    "confirmed": ShipmentStatus.SHIPPED,
    "in_transit": ShipmentStatus.IN_TRANSIT,
    "out_for_delivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "attempted_delivery": ShipmentStatus.ATTEMPTED,
    "ready_for_pickup": ShipmentStatus.AVAILABLE_FOR_PICKUP,
    "picked_up": ShipmentStatus.DELIVERED,
    "delivered": ShipmentStatus.DELIVERED,
    "failure": ShipmentStatus.EXCEPTION,
}


def _order(payload: dict) -> OrderSnapshot:
    order_id = _int(payload["id"])
    customer = payload.get("customer")
    if customer and customer.get("id") and payload.get("customer_locale"):
        customer = {**customer, "locale": payload["customer_locale"]}
    return OrderSnapshot(
        shopify_id=order_id,
        updated_at=required_time(payload, "updated_at"),
        name=payload.get("name"),
        created_at=parse_timestamp(payload.get("created_at")),
        financial_status=payload.get("financial_status"),
        fulfillment_status=payload.get("fulfillment_status"),
        cancelled_at=parse_timestamp(payload.get("cancelled_at")),
        currency=payload.get("currency"),
        total_price=Decimal(str(payload["total_price"])) if payload.get("total_price") else None,
        email=payload.get("email") or payload.get("contact_email") or None,
        phone=payload.get("phone") or None,
        customer=_customer(customer, full=False) if customer and customer.get("id") else None,
        shipments=tuple(_fulfillment(f, order_id) for f in payload.get("fulfillments") or ()),
    )


def _fulfillment(payload: dict, order_id: int) -> ShipmentSnapshot:
    return ShipmentSnapshot(
        source=SOURCE,
        external_id=str(_int(payload["id"])),
        order_shopify_id=order_id,
        status=shipment_status(payload.get("status"), payload.get("shipment_status")),
        updated_at=required_time(payload, "updated_at"),
        carrier=payload.get("tracking_company") or None,
        tracking_number=payload.get("tracking_number") or None,
        tracking_url=payload.get("tracking_url") or None,
        shipped_at=parse_timestamp(payload.get("created_at")),
        estimated_delivery_at=parse_timestamp(payload.get("estimated_delivery_at")),
    )


# The customer resource has no locale; orders carry it as `customer_locale`.
_CUSTOMER_FIELDS = ("email", "phone", "first_name", "last_name")


def _customer(payload: dict, *, full: bool) -> CustomerSnapshot:
    """A customer resource; `full` payloads (customers/*) set every field,
    embedded ones only those present."""
    attributes: dict[str, object] = {
        name: payload.get(name) or None
        for name in _CUSTOMER_FIELDS
        if full or payload.get(name) is not None
    }
    if payload.get("locale"):
        attributes["locale"] = payload["locale"]
    if payload.get("created_at"):
        attributes["shopify_created_at"] = parse_timestamp(payload["created_at"])
    # Older API versions still embed consent in the customer; keep it when present.
    for channel, key in (("email", "email_marketing_consent"), ("sms", "sms_marketing_consent")):
        consent = payload.get(key)
        if isinstance(consent, dict) and consent.get("state"):
            attributes[f"{channel}_consent"] = consent["state"]
            attributes[f"{channel}_consent_updated_at"] = parse_timestamp(
                consent.get("consent_updated_at")
            )
    updated_at = parse_timestamp(payload.get("updated_at")) or parse_timestamp(
        payload.get("created_at")
    )
    if updated_at is None:
        raise PayloadError("customer without updated_at or created_at")
    return CustomerSnapshot(
        shopify_id=_int(payload["id"]), updated_at=updated_at, attributes=attributes, complete=full
    )


def _consent(payload: dict, channel: str, triggered_at) -> ConsentChange:
    if channel == "email":
        customer_id, address = payload["customer_id"], payload.get("email_address")
        consent = payload.get("email_marketing_consent") or {}
    else:
        customer_id, address = payload["id"], payload.get("phone")
        consent = payload.get("sms_marketing_consent") or {}
    # Shopify may leave consent_updated_at null; then the event's own trigger
    # time is the best version stamp we have.
    updated_at = parse_timestamp(consent.get("consent_updated_at")) or triggered_at
    if updated_at is None:
        raise PayloadError("consent change without consent_updated_at or trigger time")
    return ConsentChange(
        customer_shopify_id=_int(customer_id),
        channel=channel,
        state=consent.get("state"),
        updated_at=updated_at,
        address=address or None,
    )


def _customer_ref(payload: dict) -> int | None:
    customer = payload.get("customer") or {}
    return _opt_int(customer.get("id"))


def _ids(values) -> tuple[int, ...]:
    return tuple(_int(v) for v in values or ())


def _int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected an id, got {value!r}")
    return int(value)


def _opt_int(value) -> int | None:
    return None if value in (None, "") else _int(value)


def required_time(payload: Mapping, key: str):
    """A timestamp the record cannot do without (REST and GraphQL alike)."""
    value = parse_timestamp(payload.get(key))
    if value is None:
        raise PayloadError(f"missing {key}")
    return value
