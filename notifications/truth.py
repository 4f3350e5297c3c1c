"""Is a queued message still true when it leaves?

A message can wait in the outbox for hours (a provider's retries, quiet
hours, the frequency cap) while the order moves on: "your order is on its
way" after the parcel was delivered, or a delivery date a later carrier
event has already changed. Just before sending, the worker asks these two
questions over the order and shipment as they are now.
"""

from __future__ import annotations

from app.models import Order, Shipment
from app.order_state import OrderState

# Order states after which a message of this kind tells the customer
# something no longer true (or no longer wanted).
PASSED: dict[str, frozenset[str]] = {
    "shipping": frozenset({OrderState.DELIVERED, OrderState.CANCELLED, OrderState.REFUNDED}),
}


def no_longer_true(kind: str, order: Order | None) -> str | None:
    """Why a message of `kind` about `order` must not go out now, or None."""
    if order is not None and order.state in PASSED.get(kind, ()):
        return f"no longer true: the order is {order.state} (the {kind} message came too late)"
    return None


def current_facts(context: dict, order: Order | None, shipment: Shipment | None) -> dict:
    """`context` with the facts the order and its parcel have now, not those
    of the moment it was queued."""
    facts = dict(context)
    if order is not None:
        facts |= {"order_name": order.name, "total": order.total_price, "currency": order.currency}
    if shipment is not None:
        facts |= {
            "carrier": shipment.carrier,
            "tracking_number": shipment.tracking_number,
            "tracking_url": shipment.tracking_url,
            "estimated_delivery": shipment.estimated_delivery_at,
        }
    return facts
