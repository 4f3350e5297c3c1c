"""Domain events: what an outside message means to us, independent of who sent
it. Integrations turn their formats into these; `app.ingest` applies them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from app.order_state import ShipmentStatus


class PayloadError(ValueError):
    """A stored message whose content we cannot interpret. Retrying will not
    help, so it goes straight to the dead letters, visibly."""


@dataclass(frozen=True)
class CustomerSnapshot:
    shopify_id: int
    updated_at: datetime
    # Only the attributes the payload carries: an order's embedded customer
    # has fewer fields than a customers/update, and must not blank the rest.
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ShipmentSnapshot:
    source: str
    external_id: str
    order_shopify_id: int
    status: ShipmentStatus
    updated_at: datetime
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None


@dataclass(frozen=True)
class OrderSnapshot:
    shopify_id: int
    updated_at: datetime
    name: str | None
    created_at: datetime | None
    financial_status: str | None
    fulfillment_status: str | None
    cancelled_at: datetime | None
    currency: str | None
    total_price: Decimal | None
    email: str | None
    phone: str | None
    customer: CustomerSnapshot | None
    shipments: tuple[ShipmentSnapshot, ...] = ()


@dataclass(frozen=True)
class ConsentChange:
    customer_shopify_id: int
    channel: str  # "email" or "sms"
    state: str | None
    updated_at: datetime
    address: str | None  # the email address or phone number it concerns


@dataclass(frozen=True)
class ShopUninstalled:
    pass


@dataclass(frozen=True)
class CustomerRedaction:
    customer_shopify_id: int | None
    order_shopify_ids: tuple[int, ...]


@dataclass(frozen=True)
class ShopRedaction:
    pass


@dataclass(frozen=True)
class CustomerDataRequest:
    request_id: int | None
    customer_shopify_id: int | None
    order_shopify_ids: tuple[int, ...]


Event = (
    OrderSnapshot
    | ShipmentSnapshot
    | CustomerSnapshot
    | ConsentChange
    | ShopUninstalled
    | CustomerRedaction
    | ShopRedaction
    | CustomerDataRequest
)
