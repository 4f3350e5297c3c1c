"""Domain events: what an outside message means to us, independent of who sent
it. Integrations turn their formats into these; `app.orders` applies them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class ShipmentStatus(StrEnum):
    """Where a parcel is, in our words; every source's statuses map onto these."""

    LABEL_CREATED = "label_created"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ATTEMPTED = "attempted"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"
    RETURNED = "returned"


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
    # Customer metafields the payload carried, "namespace.key" -> value;
    # None when it carried none (a subscription without metafieldNamespaces),
    # which must not blank a birth date we know.
    metafields: dict[str, str] | None = None
    # A complete record (customers/*, the bulk import) versions the customer;
    # a partial one (embedded in an order) only fills in what it carries, so
    # it can never make a complete record of the same version look stale.
    complete: bool = True


@dataclass(frozen=True)
class OrderMatch:
    """How a fulfillment provider names an order. Unlike Shopify's own ids,
    these only match an order we already know; an event that matches none is
    parked until the order arrives."""

    shopify_id: int | None = None
    name: str | None = None  # the order number, "#1001" or "1001"
    tracking_number: str | None = None

    def references(self) -> tuple[str, ...]:
        """The keys a parked event waits under (see `ParkedReference`)."""
        keys = []
        if self.shopify_id is not None:
            keys.append(f"order:{self.shopify_id}")
        if self.name:
            keys.append(f"name:{order_number(self.name)}")
        if self.tracking_number:
            keys.append(f"tracking:{self.tracking_number}")
        return tuple(keys)


def order_number(name: str) -> str:
    """ "#1001" and "1001" name the same order."""
    return name.strip().lstrip("#")


@dataclass(frozen=True)
class ShipmentSnapshot:
    """One source's view of one parcel. Facts left None are unknown to the
    source and keep whatever another event told us."""

    source: str
    external_id: str
    status: ShipmentStatus
    updated_at: datetime  # when the source says this was true: the version stamp
    order_shopify_id: int | None = None  # Shopify's own fulfillments: authoritative
    match: OrderMatch | None = None  # providers: match an order we know, or park
    status_detail: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    promised_ship_at: datetime | None = None
    shipped_at: datetime | None = None
    estimated_delivery_at: datetime | None = None
    delivered_at: datetime | None = None
    last_scan_at: datetime | None = None


@dataclass(frozen=True)
class LineItemSnapshot:
    title: str
    variant_title: str | None
    sku: str | None
    quantity: int
    price: Decimal | None


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
    test: bool = False  # placed with a test gateway: retention never counts it
    # What rule conditions match on (`app.rule_book`).
    shipping_country: str | None = None  # ISO 3166 alpha-2
    shipping_method: str | None = None  # the first shipping line's title
    tags: str | None = None  # Shopify's comma-separated list
    # None: this source does not say (the bulk export); the lines stay as they are.
    line_items: tuple[LineItemSnapshot, ...] | None = None


@dataclass(frozen=True)
class FulfillmentOrderSnapshot:
    """One Shopify fulfillment order: the promise it carries (ship by
    `fulfill_by`, arrive between `delivery_min_at` and `delivery_max_at`) and
    whether the warehouse holds it. From GraphQL (`complete`: every fact,
    None meaning none) or from a `fulfillment_orders/*` webhook, which
    carries only the status (and a hold's reason or a new `fulfill_at`) and
    not even the order: that is found by the fulfillment order's id."""

    fulfillment_order_id: int
    updated_at: datetime  # the version stamp (GraphQL updatedAt, or the trigger time)
    status: str | None  # lower case: open, in_progress, scheduled, on_hold, closed, ...
    order_shopify_id: int | None = None
    hold_reason: str | None = None  # lower case FulfillmentHoldReason, while on hold
    fulfill_by: datetime | None = None
    fulfill_at: datetime | None = None
    delivery_min_at: datetime | None = None
    delivery_max_at: datetime | None = None
    complete: bool = True
    # The signal says a deadline changed without carrying it: ask Shopify
    # (a reconciliation is queued).
    refresh: bool = False


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
class BulkOperationFinished:
    """A bulk operation we started (the history import) has its result."""

    operation_id: str  # the gid
    status: str  # lower case: completed, failed, canceled, expired
    error_code: str | None


@dataclass(frozen=True)
class CustomerDataRequest:
    request_id: int | None
    customer_shopify_id: int | None
    order_shopify_ids: tuple[int, ...]


TICKET_STATUSES = ("open", "pending", "solved", "closed")
TICKET_CHANNELS = ("email", "chat", "sms", "phone", "social", "other")
AUTHOR_KINDS = ("customer", "agent", "system")


@dataclass(frozen=True)
class TicketMessageFact:
    """One message on a ticket, as the helpdesk tells it."""

    external_id: str
    author_kind: str  # one of AUTHOR_KINDS
    public: bool
    sent_at: datetime
    body: str | None = None


@dataclass(frozen=True)
class TicketSnapshot:
    """One helpdesk's view of one ticket at `updated_at` (the version stamp:
    an older view never moves a newer one back). Facts left None are not in
    this delivery and keep what another one told us; `messages` are added
    whatever their age (each is its own fact, deduplicated by id)."""

    source: str
    external_id: str
    updated_at: datetime
    status: str | None = None  # one of TICKET_STATUSES
    channel: str | None = None  # one of TICKET_CHANNELS
    opened_at: datetime | None = None
    subject: str | None = None
    requester_email: str | None = None
    requester_phone: str | None = None
    assignee: str | None = None
    tier: str | None = None
    tags: tuple[str, ...] | None = None
    ticket_type: str | None = None  # the helpdesk's own type field, mapped like a tag
    order_name: str | None = None  # the helpdesk's order field
    spam: bool | None = None
    merged: bool | None = None
    agent_started: bool | None = None
    internal: bool | None = None
    messages: tuple[TicketMessageFact, ...] = ()


Event = (
    TicketSnapshot
    | OrderSnapshot
    | ShipmentSnapshot
    | CustomerSnapshot
    | FulfillmentOrderSnapshot
    | ConsentChange
    | ShopUninstalled
    | CustomerRedaction
    | ShopRedaction
    | CustomerDataRequest
    | BulkOperationFinished
)


class UnsupportedTopic(ValueError):
    """A well-formed delivery about something we do not handle."""


@dataclass(frozen=True)
class Described:
    """What the inbox needs to know of a provider delivery before storing it."""

    topic: str
    delivery_id: str  # the sender's id for this delivery: the dedupe key
    triggered_at: datetime | None = None
