"""The facts a queued message tells, as they are when it leaves.

A message can wait in the outbox for hours (a provider's retries, quiet
hours, the frequency cap) while the order moves on: a delivery date a later
carrier event has already changed. Just before sending, the worker renders
the order and shipment as they are now. (Whether the message is still true
at all is the rules' to say: `app.rules.no_longer_true`.)
"""

from __future__ import annotations

from datetime import datetime

from app.models import Order, Shipment


def current_facts(
    context: dict, order: Order | None, shipment: Shipment | None, now: datetime
) -> dict:
    """`context` with the facts the order and its parcel have now, not those
    of the moment it was queued. A delivery estimate that has passed is not
    shown as if it still held: it is left out (the templates then say
    nothing of a date)."""
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
    estimate = facts.get("estimated_delivery")
    if isinstance(estimate, datetime) and estimate < now:
        facts["estimated_delivery"] = None
    return facts
