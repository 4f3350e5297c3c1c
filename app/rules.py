"""Proactive rules: who is told what, decided in the same transaction as the
change that makes it true. Rules subscribe to what applying an event changed
(`app.changes`, through `react`) and address an `Audience`. For now one rule:
the first parcel of an order is on its way, so the customer hears "your
order has shipped". The rules engine (delay, birthday, merchant-configured
rules) grows from this seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from app.changes import Change, OrderDetailsArrived, ShipmentStageChanged
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


# Order states after which a message of this kind tells the customer
# something no longer true (or no longer wanted): "on its way" after the
# delivery, for one.
PASSED: dict[str, frozenset[str]] = {
    SHIPPING.kind: frozenset({OrderState.DELIVERED, OrderState.CANCELLED, OrderState.REFUNDED}),
}


def no_longer_true(kind: str, order: Order | None) -> str | None:
    """Why a queued message of `kind` about `order` must not go out now, or
    None. The worker asks just before sending, with the order as it is now."""
    if order is not None and order.state in PASSED.get(kind, ()):
        return f"no longer true: the order is {order.state} (the {kind} message came too late)"
    return None


def react(session: Session, changes: list[Change], now: datetime) -> None:
    """The rules' subscriptions to what applying an event changed. Called by
    whoever applied it (the inbox, reconciliation, the history import), in
    the same transaction, after the whole event: the order's state is final."""
    for change in changes:
        match change:
            case ShipmentStageChanged():
                _shipment_changed(session, change, now)
            case OrderDetailsArrived():
                _order_details_arrived(session, change.order_id, now)


def _shipment_changed(session: Session, change: ShipmentStageChanged, now: datetime) -> None:
    if change.current not in UNDER_WAY or change.previous in UNDER_WAY:
        return
    order = session.get(Order, change.order_id)
    if order.snapshot_updated_at is None:
        # Shopify sent the fulfillment before the order: who to tell is not
        # known yet. `_order_details_arrived` decides when the order arrives.
        return
    _tell_shipped(
        session, order, session.get(Shipment, change.shipment_id), change.occurred_at, now
    )


def _order_details_arrived(session: Session, order_id: int, now: datetime) -> None:
    order = session.get(Order, order_id)
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
    audience = Audience.of_order(session, order)
    notify(session, SHIPPING, audience, now, subject=f"order:{order.shopify_id}", facts={
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "estimated_delivery": shipment.estimated_delivery_at,
    })  # fmt: skip


@dataclass(frozen=True)
class Audience:
    """Who a message is for: a customer, an order's contact, or both. A
    birthday or a survey has no order; a guest checkout has no customer."""

    shop: Shop
    customer: Customer | None
    order: Order | None = None

    @classmethod
    def of_order(cls, session: Session, order: Order) -> Audience:
        customer = session.get(Customer, order.customer_id) if order.customer_id else None
        return cls(session.get(Shop, order.shop_id), customer, order)

    @classmethod
    def of_customer(cls, session: Session, customer: Customer) -> Audience:
        return cls(session.get(Shop, customer.shop_id), customer)

    @property
    def email(self) -> str | None:
        return (self.customer.email if self.customer else None) or (
            self.order.email if self.order else None
        )

    @property
    def phone(self) -> str | None:
        raw = (self.customer.phone if self.customer else None) or (
            self.order.phone if self.order else None
        )
        return to_e164(raw or "", None)

    @property
    def key(self) -> str:
        """Who, in a notification's unique key."""
        if self.customer is not None:
            return f"customer:{self.customer.shopify_id}"
        return f"order-contact:{self.order.shopify_id}"


def notify(
    session: Session, rule: Rule, audience: Audience, now: datetime, *, subject: str, facts: dict
) -> bool:
    """Queue `rule`'s message about `subject` on the first channel the
    audience can receive, or record why nobody could be told; False if the
    same message was queued already. The shared "who can be told, on which
    channel" step of every rule."""
    shop, customer, order = audience.shop, audience.customer, audience.order
    email, phone = audience.email, audience.phone
    options = [
        policy.Reachability(
            "email", email, customer.email_consent if customer else None,
            outbox.opted_out(session, shop.id, "email", email),
        ),
        policy.Reachability(
            "sms", phone, customer.sms_consent if customer else None,
            outbox.opted_out(session, shop.id, "sms", phone),
        ),
    ]  # fmt: skip
    choice = policy.choose_channel(list(rule.channels), options, rule.category)
    order_facts = (
        {"order_name": order.name, "total": order.total_price, "currency": order.currency}
        if order is not None
        else {}
    )
    channel, recipient = choice.channel, choice.address
    if channel is None:
        # Suppressed: record the channel and address it was about (the first
        # the customer has, in the rule's order), never one without the other.
        about = next(
            (o for name in rule.channels for o in options if o.channel == name and o.address),
            None,
        )
        channel, recipient = (about.channel, about.address) if about else (rule.channels[0], "")
    return outbox.enqueue(
        session,
        shop_id=shop.id,
        key=f"{audience.key}:{rule.kind}:{subject}",
        kind=rule.kind,
        category=rule.category,
        channel=channel,
        recipient=recipient or "",
        locale=(customer.locale if customer else None) or shop.locale,
        context={
            "customer_first_name": customer.first_name if customer else None,
            **order_facts,
            **facts,
        },
        now=now,
        customer_id=customer.id if customer else None,
        order_id=order.id if order else None,
        suppressed_because=choice.reason,
    )
