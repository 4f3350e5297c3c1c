"""Proactive rules: who is told what, decided in the same transaction as the
change that makes it true. For now one rule: the first parcel of an order is
on its way, so the customer hears "your order has shipped". The rules engine
(delay, birthday, merchant-configured rules) grows from this seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from app.models import Customer, Order, Shipment, Shop
from app.order_state import OrderState, ShipmentStatus
from notifications import outbox, policy
from notifications.phone import to_e164


@dataclass(frozen=True)
class Rule:
    kind: str
    category: str
    channels: tuple[str, ...]  # preference order


SHIPPING = Rule("shipping", policy.TRANSACTIONAL, ("email", "sms"))
# A carrier's first scan may already say "out for delivery": the parcel has
# shipped all the same. Later stages (delivered, pickup) are other news.
UNDER_WAY = {ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.OUT_FOR_DELIVERY}
# News older than this is history (a replay, a late import): nobody wants a
# "your order has shipped" about a parcel that left days ago.
STALE_AFTER = timedelta(hours=72)


def shipment_changed(
    session: Session,
    order: Order,
    shipment: Shipment,
    previous: str | None,
    happened_at: datetime,
    now: datetime,
) -> None:
    """Called after a shipment's status changed (or it appeared)."""
    if shipment.status not in UNDER_WAY or previous in UNDER_WAY:
        return
    if order.snapshot_updated_at is None:
        # Shopify sent the fulfillment before the order: who to tell is not
        # known yet. `order_first_seen` decides when the order arrives.
        return
    _tell_shipped(session, order, shipment, happened_at, now)


def order_first_seen(session: Session, order: Order, now: datetime) -> None:
    """Called when an order we knew only from its parcels gets its details."""
    shipment = session.exec(
        select(Shipment)
        .where(
            Shipment.shop_id == order.shop_id,
            Shipment.order_id == order.id,
            Shipment.status.in_(UNDER_WAY),
        )
        .order_by(Shipment.source_updated_at)
    ).first()
    if shipment is not None:
        _tell_shipped(session, order, shipment, shipment.source_updated_at, now)


def _tell_shipped(
    session: Session, order: Order, shipment: Shipment, happened_at: datetime, now: datetime
) -> None:
    if (
        order.state in (OrderState.CANCELLED, OrderState.REFUNDED)
        or now - happened_at > STALE_AFTER
    ):
        return
    notify(session, SHIPPING, order, now, subject=f"order:{order.shopify_id}", facts={
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "estimated_delivery": shipment.estimated_delivery_at,
    })  # fmt: skip


def notify(
    session: Session, rule: Rule, order: Order, now: datetime, *, subject: str, facts: dict
) -> bool:
    """Queue `rule`'s message about `subject` for the order's customer, on the
    first channel they can receive; or record why nobody could be told."""
    shop = session.get(Shop, order.shop_id)
    customer = session.get(Customer, order.customer_id) if order.customer_id else None
    email = (customer.email if customer else None) or order.email
    phone = to_e164((customer.phone if customer else None) or order.phone or "", None)
    options = [
        policy.Reachability(
            "email", email, customer.email_consent if customer else None,
            outbox.opted_out(session, order.shop_id, "email", email),
        ),
        policy.Reachability(
            "sms", phone, customer.sms_consent if customer else None,
            outbox.opted_out(session, order.shop_id, "sms", phone),
        ),
    ]  # fmt: skip
    choice = policy.choose_channel(list(rule.channels), options, rule.category)
    channel, recipient = choice.channel, choice.address
    if channel is None:
        # Suppressed: record the channel and address it was about (the first
        # the customer has, in the rule's order), never one without the other.
        about = next(
            (o for name in rule.channels for o in options if o.channel == name and o.address),
            None,
        )
        channel, recipient = (about.channel, about.address) if about else (rule.channels[0], "")
    who = f"customer:{customer.shopify_id}" if customer else f"order-contact:{order.shopify_id}"
    return outbox.enqueue(
        session,
        shop_id=order.shop_id,
        key=f"{who}:{rule.kind}:{subject}",
        kind=rule.kind,
        category=rule.category,
        channel=channel,
        recipient=recipient or "",
        locale=(customer.locale if customer else None) or shop.locale,
        context={
            "customer_first_name": customer.first_name if customer else None,
            "order_name": order.name,
            "total": order.total_price,
            "currency": order.currency,
            **facts,
        },
        now=now,
        customer_id=customer.id if customer else None,
        order_id=order.id,
        suppressed_because=choice.reason,
    )
