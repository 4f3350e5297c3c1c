"""What applying an event changed: the facts the rules subscribe to.

`app.orders.apply` returns these instead of calling the rules itself, so
that applying an event knows nothing of who is told what, and a new rule
(delay, birthday, survey) subscribes to a change without touching how
events are applied. They carry row ids, not rows: the subscriber reads what
it needs in the same transaction, after the whole event has been applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class OrderStateChanged:
    order_id: int
    previous: str | None
    current: str
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentStageChanged:
    """A shipment appeared (`previous` None) or moved to another status."""

    order_id: int
    shipment_id: int
    previous: str | None
    current: str
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentFactsChanged:
    """A newer word on a parcel that kept its status: a scan, a revised
    estimate. What is late (`app.delay_checks`) may have changed."""

    order_id: int
    shipment_id: int


@dataclass(frozen=True)
class OrderDetailsArrived:
    """An order we knew only from its parcels got its details (customer,
    contact, totals): what waited for them can be decided now.
    `woke_parked`: how many provider events that waited for this order
    were woken; they apply next, and carry facts its delays depend on."""

    order_id: int
    woke_parked: int = 0


@dataclass(frozen=True)
class PromiseChanged:
    """What Shopify's fulfillment orders promise for an order changed: the
    ship-by time (`Order.fulfill_by`) or the delivery window promised at
    checkout (`Order.delivery_min_at`, `delivery_max_at`). Values are the new ones."""

    order_id: int
    fulfill_by: datetime | None
    delivery_min_at: datetime | None
    delivery_max_at: datetime | None
    occurred_at: datetime


@dataclass(frozen=True)
class HoldChanged:
    """The warehouse put an order's fulfillment on hold (`on_hold`, with
    Shopify's reason, e.g. "inventory_out_of_stock"), or released it: a
    warehouse-hold fact for the delay rules, whatever the source."""

    order_id: int
    on_hold: bool
    reason: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class CustomerFactChanged:
    """A fact about a customer that rules may act on, such as a birth date."""

    customer_id: int
    fact: str
    previous: object
    current: object


Change = (
    OrderStateChanged
    | ShipmentStageChanged
    | ShipmentFactsChanged
    | OrderDetailsArrived
    | CustomerFactChanged
    | PromiseChanged
    | HoldChanged
)
