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
- `fulfillment_orders/*` payloads (webhooks reference, 2026-07 sample
  payloads) carry the FulfillmentOrder's gid and status only: no order id,
  no `fulfill_by`, no delivery window. `placed_on_hold` adds the holds
  (`fulfillment_order.fulfillment_holds[]` and, since 2024-10,
  `created_fulfillment_hold` {reason, reason_notes}), `rescheduled` a new
  `fulfill_at`. They have no `updated_at`: X-Shopify-Triggered-At stamps them.
  The promise itself is read with GraphQL (`integrations.shopify_bulk`).
- `fulfillment_events/create` is a FulfillmentEvent: `fulfillment_id`,
  `order_id`, `status` (a carrier scan: in_transit, out_for_delivery,
  attempted_delivery, ready_for_pickup, delivered, failure, ...),
  `message`, `happened_at`, `estimated_delivery_at`.
- Customer payloads carry `metafields` [{namespace, key, value, type, ...}]
  only for the namespaces named in the subscription's `metafieldNamespaces`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

from app.events import (
    BulkOperationFinished,
    ConsentChange,
    CustomerDataRequest,
    CustomerRedaction,
    CustomerSnapshot,
    Event,
    FulfillmentOrderSnapshot,
    LineItemSnapshot,
    OrderSnapshot,
    PayloadError,
    ShipmentSnapshot,
    ShipmentStatus,
    ShopRedaction,
    ShopUninstalled,
)
from integrations import fields

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
# The fulfillment order topics that move a promise or a hold. Those that
# carry no new deadline although one may have changed (a fulfillment service
# accepted the request, routing assigned a location) ask for a refresh.
FULFILLMENT_ORDER_TOPICS = frozenset(
    {
        "fulfillment_orders/placed_on_hold",
        "fulfillment_orders/hold_released",
        "fulfillment_orders/rescheduled",
        "fulfillment_orders/fulfillment_request_accepted",
        "fulfillment_orders/order_routing_complete",
    }
)
_REFRESH_TOPICS = frozenset(
    {"fulfillment_orders/fulfillment_request_accepted", "fulfillment_orders/order_routing_complete"}
)
FULFILLMENT_EVENT_TOPICS = frozenset({"fulfillment_events/create"})
CONSENT_TOPICS = frozenset(
    {"customers_email_marketing_consent/update", "customers_marketing_consent/update"}
)
# Mandatory privacy webhooks; Shopify sends shop/redact 48 hours after
# uninstall, so these are accepted for uninstalled shops too.
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
SUPPORTED_TOPICS = (
    ORDER_TOPICS
    | FULFILLMENT_TOPICS
    | FULFILLMENT_ORDER_TOPICS
    | FULFILLMENT_EVENT_TOPICS
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


# --- Headers against payload ------------------------------------------------------
#
# The signature covers the body only: topic and shop travel in unsigned
# headers, so a body captured from one delivery can be re-sent under another
# topic or shop. What the payload itself says must therefore agree with them.

# The REST resource each topic carries, as its `admin_graphql_api_id` names it
# (gid://shopify/<type>/<id>); None where the payload has no such id.
_RESOURCE_TYPE: dict[str, str | None] = {
    **dict.fromkeys(ORDER_TOPICS, "Order"),
    **dict.fromkeys(FULFILLMENT_TOPICS, "Fulfillment"),
    **dict.fromkeys(CUSTOMER_TOPICS, "Customer"),
    **dict.fromkeys(FULFILLMENT_ORDER_TOPICS, None),
    "fulfillment_events/create": "FulfillmentEvent",
    **dict.fromkeys(CONSENT_TOPICS | COMPLIANCE_TOPICS, None),
    "app/uninstalled": None,  # the Shop resource; it names its shop instead
    "bulk_operations/finish": "BulkOperation",
}

# Top-level fields that tell each topic's documented payload from the others
# (tests/fixtures/shopify/README.md lists the exact consent and compliance
# fields). Ids are not among them: a payload without one is the worker's to
# dead-letter, with its reason.
_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(ORDER_TOPICS, ("order_number", "line_items")),
    **dict.fromkeys(FULFILLMENT_TOPICS, ("order_id",)),
    **dict.fromkeys(CUSTOMER_TOPICS, ()),
    **dict.fromkeys(FULFILLMENT_ORDER_TOPICS, ("fulfillment_order",)),
    "fulfillment_events/create": ("fulfillment_id", "order_id", "status"),
    "customers_email_marketing_consent/update": ("email_marketing_consent",),
    "customers_marketing_consent/update": ("sms_marketing_consent",),
    "app/uninstalled": ("myshopify_domain",),
    "customers/data_request": ("shop_domain", "orders_requested"),
    "customers/redact": ("shop_domain", "orders_to_redact"),
    "shop/redact": ("shop_domain",),
    "bulk_operations/finish": ("admin_graphql_api_id",),
}

# Fields only some resources have: a payload carrying one is that resource,
# whatever the topic header says (an order under `customers/update`, a Shop
# under `orders/create`).
_FIELD_OWNERS: dict[str, frozenset[str]] = {
    "order_number": ORDER_TOPICS,
    "line_items": ORDER_TOPICS | FULFILLMENT_TOPICS,
    "myshopify_domain": frozenset({"app/uninstalled"}),
    "fulfillment_order": FULFILLMENT_ORDER_TOPICS,
    "fulfillment_id": FULFILLMENT_EVENT_TOPICS,
    "shop_domain": COMPLIANCE_TOPICS,
    "orders_requested": frozenset({"customers/data_request"}),
    "orders_to_redact": frozenset({"customers/redact"}),
}

_GID = re.compile(r"gid://shopify/([A-Za-z]+)/[0-9]+")


def header_mismatch(topic: str, shop: str, payload: dict) -> str | None:
    """Why a verified payload cannot be what its headers say (a supported
    `topic` for the shop domain `shop`), or None when they agree."""
    for name in ("shop_domain", "myshopify_domain"):
        if name in payload and not _same_shop(payload[name], shop):
            return f"{name} is not the shop in X-Shopify-Shop-Domain"
    # A Shop resource's `domain` is its primary domain, which may be the
    # merchant's own; when it is a myshopify.com one, it is this shop's.
    # Orders link to their status page on the shop's domain likewise.
    for name in ("domain", "order_status_url"):
        host = _myshopify_host(payload.get(name))
        if host is not None and host != shop:
            return f"{name} names another shop than X-Shopify-Shop-Domain"
    missing = [name for name in _REQUIRED_FIELDS[topic] if payload.get(name) is None]
    if missing:
        return f"not a {topic} payload: no {', '.join(missing)}"
    foreign = [
        name for name, owners in _FIELD_OWNERS.items() if name in payload and topic not in owners
    ]
    if foreign:
        return f"not a {topic} payload: it has {', '.join(foreign)}"
    return _gid_mismatch(topic, payload)


def _gid_mismatch(topic: str, payload: dict) -> str | None:
    gid, expected = payload.get("admin_graphql_api_id"), _RESOURCE_TYPE[topic]
    if gid is None:
        return None
    if expected is None:
        return f"not a {topic} payload: it has admin_graphql_api_id"
    match = _GID.fullmatch(gid) if isinstance(gid, str) else None
    if match is None or match.group(1) != expected:
        return f"admin_graphql_api_id is not the id of a {expected}"
    return None


def _same_shop(value: object, shop: str) -> bool:
    return isinstance(value, str) and value.lower() == shop


def _myshopify_host(value: object) -> str | None:
    """The host of a domain or URL when it is a `<name>.myshopify.com` one."""
    if not isinstance(value, str):
        return None
    host = value.removeprefix("https://").removeprefix("http://").split("/", 1)[0].lower()
    return host if host.endswith(".myshopify.com") else None


def parse(topic: str, payload: dict, triggered_at) -> list[Event]:
    """Turn one webhook payload into the domain events it carries; a payload
    whose shape, types or values do not fit raises PayloadError naming the
    field (`integrations.fields`)."""
    if topic in ORDER_TOPICS:
        return [_order(payload)]
    if topic in FULFILLMENT_TOPICS:
        return [_fulfillment(payload, fields.identifier(payload.get("order_id"), "order_id"))]
    if topic in CUSTOMER_TOPICS:
        return [_customer(payload, "customer", full=True)]
    if topic in FULFILLMENT_ORDER_TOPICS:
        return [_fulfillment_order_signal(topic, payload, triggered_at)]
    if topic in FULFILLMENT_EVENT_TOPICS:
        return [_fulfillment_event(payload)]
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
                order_shopify_ids=fields.identifiers(
                    payload.get("orders_to_redact"), "orders_to_redact"
                ),
            )
        ]
    if topic == "customers/data_request":
        request = fields.mapping(payload.get("data_request"), "data_request")
        return [
            CustomerDataRequest(
                request_id=fields.optional_identifier(request.get("id"), "data_request.id"),
                customer_shopify_id=_customer_ref(payload),
                order_shopify_ids=fields.identifiers(
                    payload.get("orders_requested"), "orders_requested"
                ),
            )
        ]
    if topic == "shop/redact":
        return [ShopRedaction()]
    if topic == "bulk_operations/finish":
        operation_id = fields.text(payload.get("admin_graphql_api_id"), "admin_graphql_api_id", 128)
        status = fields.text(payload.get("status"), "status", 32)
        if operation_id is None or status is None:
            raise PayloadError("admin_graphql_api_id and status are required")
        return [
            BulkOperationFinished(
                operation_id=operation_id,
                status=status.lower(),
                error_code=fields.text(payload.get("error_code"), "error_code", 128),
            )
        ]
    raise PayloadError(f"unsupported topic {topic}")


def references(topic: str, payload: dict) -> tuple[int | None, int | None]:
    """(customer id, order id) a payload concerns, for finding it at redaction.

    Read from the same fields `parse` reads, and never guessed: a message
    whose references cannot be read fails (PayloadError, a visible dead
    letter) rather than be stored where redaction would not find it."""
    if topic in ORDER_TOPICS:
        return _customer_ref(payload), fields.optional_identifier(payload.get("id"), "id")
    if topic in FULFILLMENT_TOPICS | FULFILLMENT_EVENT_TOPICS:
        return None, fields.optional_identifier(payload.get("order_id"), "order_id")
    if topic in CUSTOMER_TOPICS:
        return fields.optional_identifier(payload.get("id"), "id"), None
    if topic in CONSENT_TOPICS:
        key = "customer_id" if topic == "customers_email_marketing_consent/update" else "id"
        return fields.optional_identifier(payload.get(key), key), None
    if topic in ("customers/redact", "customers/data_request"):
        return _customer_ref(payload), None
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
# FulfillmentEvent statuses beyond the shipment_status words above.
_EVENT_STATUS = {
    **_SHIPMENT_STATUS,
    "carrier_picked_up": ShipmentStatus.IN_TRANSIT,
    "delayed": ShipmentStatus.IN_TRANSIT,  # late, not lost: judged against the estimate
}
_SCANS = frozenset(_EVENT_STATUS) - {"label_printed", "label_purchased", "confirmed"}


def _fulfillment_event(payload: dict) -> ShipmentSnapshot:
    """A carrier scan on a Shopify fulfillment: the same parcel as the
    fulfillment (`external_id` is the fulfillment's id), stamped with when
    it happened, so an older scan never overwrites a newer fact."""
    word = fields.text(payload.get("status"), "status", 32)
    if word is None or word not in _EVENT_STATUS:
        raise PayloadError(f"status {word!r} is not a fulfillment event status")
    happened_at = fields.timestamp(payload.get("happened_at"), "happened_at") or (
        fields.required_timestamp(payload.get("created_at"), "created_at")
    )
    status = _EVENT_STATUS[word]
    return ShipmentSnapshot(
        source=SOURCE,
        external_id=str(fields.identifier(payload.get("fulfillment_id"), "fulfillment_id")),
        order_shopify_id=fields.identifier(payload.get("order_id"), "order_id"),
        status=status,
        updated_at=happened_at,
        status_detail=fields.clip(payload.get("message"), "message", 2000),
        estimated_delivery_at=fields.timestamp(
            payload.get("estimated_delivery_at"), "estimated_delivery_at"
        ),
        delivered_at=happened_at if status is ShipmentStatus.DELIVERED else None,
        last_scan_at=happened_at if word in _SCANS else None,
    )


def _fulfillment_order_signal(topic: str, payload: dict, triggered_at) -> FulfillmentOrderSnapshot:
    order = fields.mapping(payload.get("fulfillment_order"), "fulfillment_order")
    status = fields.text(order.get("status"), "fulfillment_order.status", 32)
    if status is None:
        raise PayloadError("fulfillment_order.status is required")
    if triggered_at is None:
        raise PayloadError("a fulfillment order signal without X-Shopify-Triggered-At")
    reason = None
    if status.lower() == "on_hold":
        created = fields.mapping(
            payload.get("created_fulfillment_hold"), "created_fulfillment_hold"
        )
        holds = fields.mappings(
            order.get("fulfillment_holds"), "fulfillment_order.fulfillment_holds"
        )
        hold = created or (holds[0] if holds else {})
        reason = fields.text(hold.get("reason"), "fulfillment hold reason", 64) or "other"
    return FulfillmentOrderSnapshot(
        fulfillment_order_id=gid_number(
            order.get("id"), "FulfillmentOrder", "fulfillment_order.id"
        ),
        updated_at=triggered_at,
        status=status.lower(),
        hold_reason=reason.lower() if reason else None,
        fulfill_at=fields.timestamp(order.get("fulfill_at"), "fulfillment_order.fulfill_at"),
        complete=False,
        refresh=topic in _REFRESH_TOPICS,
    )


def gid_number(value: object, kind: str, name: str) -> int:
    """The number of a `gid://shopify/<kind>/<n>`, or PayloadError naming the field."""
    match = _GID.fullmatch(value) if isinstance(value, str) else None
    if match is None or match.group(1) != kind:
        raise PayloadError(f"{name} is not the id of a {kind}")
    return fields.identifier(value.rsplit("/", 1)[1], name)


def _order(payload: dict) -> OrderSnapshot:
    order_id = fields.identifier(payload.get("id"), "id")
    customer = fields.mapping(payload.get("customer"), "customer")
    locale = fields.text(payload.get("customer_locale"), "customer_locale", 16)
    if customer.get("id") and locale:
        customer = {**customer, "locale": locale}
    fulfillments = fields.mappings(payload.get("fulfillments"), "fulfillments")
    address = fields.mapping(payload.get("shipping_address"), "shipping_address")
    lines = fields.mappings(payload.get("shipping_lines"), "shipping_lines")
    country = fields.text(address.get("country_code"), "shipping_address.country_code", 2)
    return OrderSnapshot(
        shopify_id=order_id,
        updated_at=required_time(payload, "updated_at"),
        name=fields.text(payload.get("name"), "name", 64),
        created_at=fields.timestamp(payload.get("created_at"), "created_at"),
        financial_status=fields.text(payload.get("financial_status"), "financial_status", 32),
        fulfillment_status=fields.text(payload.get("fulfillment_status"), "fulfillment_status", 32),
        cancelled_at=fields.timestamp(payload.get("cancelled_at"), "cancelled_at"),
        currency=fields.text(payload.get("currency"), "currency", 3),
        total_price=fields.amount(payload.get("total_price"), "total_price"),
        email=fields.text(payload.get("email"), "email", 320)
        or fields.text(payload.get("contact_email"), "contact_email", 320),
        phone=fields.text(payload.get("phone"), "phone", 32),
        customer=_customer(customer, "customer", full=False) if customer.get("id") else None,
        shipments=tuple(
            _fulfillment(f, order_id, f"fulfillments[{i}]") for i, f in enumerate(fulfillments)
        ),
        # The REST order's `test`: true for an order placed with a test gateway.
        test=payload.get("test") is True,
        shipping_country=country.upper() if country else None,
        shipping_method=fields.clip(lines[0].get("title"), "shipping_lines[0].title", 255)
        if lines
        else None,
        tags=fields.clip(payload.get("tags"), "tags", 10_000),
        line_items=tuple(
            _line_item(item, f"line_items[{i}]")
            for i, item in enumerate(fields.mappings(payload.get("line_items"), "line_items"))
        )
        if "line_items" in payload
        else None,
    )


def _line_item(payload: Mapping, name: str) -> LineItemSnapshot:
    """A line as the order page shows it; names are only shown, so they are
    cut rather than refused."""
    quantity = payload.get("quantity", 0)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity < 10**6:
        raise PayloadError(f"{name}.quantity must be a whole number")
    return LineItemSnapshot(
        title=fields.clip(payload.get("title") or payload.get("name"), f"{name}.title", 255) or "",
        variant_title=fields.clip(payload.get("variant_title"), f"{name}.variant_title", 255),
        sku=fields.clip(payload.get("sku"), f"{name}.sku", 255),
        quantity=quantity,
        price=fields.amount(payload.get("price"), f"{name}.price"),
    )


def _fulfillment(payload: Mapping, order_id: int, name: str = "fulfillment") -> ShipmentSnapshot:
    return ShipmentSnapshot(
        source=SOURCE,
        external_id=str(fields.identifier(payload.get("id"), f"{name}.id")),
        order_shopify_id=order_id,
        status=shipment_status(
            fields.text(payload.get("status"), f"{name}.status", 32),
            fields.text(payload.get("shipment_status"), f"{name}.shipment_status", 32),
        ),
        updated_at=fields.required_timestamp(payload.get("updated_at"), f"{name}.updated_at"),
        carrier=fields.text(payload.get("tracking_company"), f"{name}.tracking_company", 128),
        tracking_number=fields.text(payload.get("tracking_number"), f"{name}.tracking_number", 128),
        tracking_url=fields.clip(payload.get("tracking_url"), f"{name}.tracking_url", 2000),
        shipped_at=fields.timestamp(payload.get("created_at"), f"{name}.created_at"),
        estimated_delivery_at=fields.timestamp(
            payload.get("estimated_delivery_at"), f"{name}.estimated_delivery_at"
        ),
    )


# The customer resource has no locale; orders carry it as `customer_locale`.
# Each field with its column's length.
_CUSTOMER_FIELDS = {"email": 320, "phone": 32, "first_name": 255, "last_name": 255}


def _customer(payload: Mapping, name: str, *, full: bool) -> CustomerSnapshot:
    """A customer resource; `full` payloads (customers/*) set every field,
    embedded ones only those present."""
    attributes: dict[str, object] = {
        key: fields.text(payload.get(key), f"{name}.{key}", limit)
        for key, limit in _CUSTOMER_FIELDS.items()
        if full or payload.get(key) is not None
    }
    locale = fields.text(payload.get("locale"), f"{name}.locale", 16)
    if locale:
        attributes["locale"] = locale
    created_at = fields.timestamp(payload.get("created_at"), f"{name}.created_at")
    if created_at:
        attributes["shopify_created_at"] = created_at
    # Older API versions still embed consent in the customer; keep it when present.
    for channel, key in (("email", "email_marketing_consent"), ("sms", "sms_marketing_consent")):
        consent = fields.mapping(payload.get(key), f"{name}.{key}")
        state = fields.text(consent.get("state"), f"{name}.{key}.state", 32)
        if state:
            attributes[f"{channel}_consent"] = state
            attributes[f"{channel}_consent_updated_at"] = fields.timestamp(
                consent.get("consent_updated_at"), f"{name}.{key}.consent_updated_at"
            )
    updated_at = fields.timestamp(payload.get("updated_at"), f"{name}.updated_at") or created_at
    if updated_at is None:
        raise PayloadError(f"{name} without updated_at or created_at")
    return CustomerSnapshot(
        shopify_id=fields.identifier(payload.get("id"), f"{name}.id"),
        updated_at=updated_at,
        attributes=attributes,
        metafields=_metafields(payload, name) if "metafields" in payload else None,
        complete=full,
    )


def _metafields(payload: Mapping, name: str) -> dict[str, str]:
    """ "namespace.key" -> value of the metafields a customer payload carries."""
    found: dict[str, str] = {}
    for index, item in enumerate(fields.mappings(payload.get("metafields"), f"{name}.metafields")):
        where = f"{name}.metafields[{index}]"
        namespace = fields.text(item.get("namespace"), f"{where}.namespace", 255)
        key = fields.text(item.get("key"), f"{where}.key", 64)
        value = fields.clip(item.get("value"), f"{where}.value", 255)
        if namespace and key and value is not None:
            found[f"{namespace}.{key}"] = value
    return found


def _consent(payload: dict, channel: str, triggered_at) -> ConsentChange:
    if channel == "email":
        id_key, address_key, consent_key, limit = (
            "customer_id", "email_address", "email_marketing_consent", 320,
        )  # fmt: skip
    else:
        id_key, address_key, consent_key, limit = "id", "phone", "sms_marketing_consent", 32
    consent = fields.mapping(payload.get(consent_key), consent_key)
    # Shopify may leave consent_updated_at null; then the event's own trigger
    # time is the best version stamp we have.
    updated_at = (
        fields.timestamp(consent.get("consent_updated_at"), f"{consent_key}.consent_updated_at")
        or triggered_at
    )
    if updated_at is None:
        raise PayloadError("consent change without consent_updated_at or trigger time")
    return ConsentChange(
        customer_shopify_id=fields.identifier(payload.get(id_key), id_key),
        channel=channel,
        state=fields.text(consent.get("state"), f"{consent_key}.state", 32),
        updated_at=updated_at,
        address=fields.text(payload.get(address_key), address_key, limit),
    )


def _customer_ref(payload: Mapping) -> int | None:
    customer = fields.mapping(payload.get("customer"), "customer")
    return fields.optional_identifier(customer.get("id"), "customer.id")


def required_time(payload: Mapping, key: str):
    """A timestamp the record cannot do without (REST and GraphQL alike)."""
    return fields.required_timestamp(payload.get(key), key)
