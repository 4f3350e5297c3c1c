"""Who a rule's message is for, and the shared step every rule ends with:
choose the channel the audience can receive on, and queue the message (or
record why nobody could be told) in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from sqlmodel import Session

from app.models import Customer, Order, Shop
from notifications import outbox, policy
from notifications.phone import to_e164


@dataclass(frozen=True)
class Rule:
    """What `notify` needs of a rule: the template kind, transactional or
    marketing, the channels in preference order; and, for a merchant's rule
    (`models.Rule`), its id, its wait and whether it keeps the quiet hours."""

    kind: str
    category: str
    channels: tuple[str, ...]  # preference order
    rule_id: int | None = None
    wait: timedelta = timedelta(0)
    quiet_hours: bool = True


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

    # Cached: a batch's decision reads each address several times.
    @cached_property
    def email(self) -> str | None:
        return (self.customer.email if self.customer else None) or (
            self.order.email if self.order else None
        )

    @cached_property
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


@dataclass(frozen=True)
class Plan:
    """Where a rule's message would go: the channel and address, or (when
    nobody can be told) the channel and address it was about and why not."""

    channel: str
    recipient: str
    suppressed_because: str | None


OptedOut = Callable[[str, str | None], bool]  # (channel, address): said no?


def plan(
    session: Session, rule: Rule, audience: Audience, opted_out: OptedOut | None = None
) -> Plan:
    """The "who can be told, on which channel" step of every rule, without
    queueing anything (a rule's preview uses it as it is). `opted_out`
    answers from what a batch read at once; by default each is looked up."""
    shop, customer = audience.shop, audience.customer
    email, phone = audience.email, audience.phone
    said_no = opted_out or (lambda channel, address: outbox.opted_out(
        session, shop.id, channel, address))  # fmt: skip
    options = [
        policy.Reachability(
            "email", email, customer.email_consent if customer else None,
            said_no("email", email),
        ),
        policy.Reachability(
            "sms", phone, customer.sms_consent if customer else None, said_no("sms", phone),
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
    return Plan(channel, recipient or "", choice.reason)


def key(audience: Audience, rule: Rule, subject: str) -> str:
    """The outbox key of `rule`'s message about `subject` to `audience`."""
    return f"{audience.key}:{rule.kind}:{subject}"


_REPLACING = ":replacing:"


def replacing(subject: str, withdrawn_id: int) -> str:
    """The subject of a message told again in place of the withdrawn one
    (its rule stopped): a key of its own, since the withdrawn row keeps its."""
    return f"{subject}{_REPLACING}{withdrawn_id}"


def subject_of(outbox_key: str, kind: str) -> str:
    """What a message's `key` says it is about, without any `replacing`."""
    return outbox_key.split(f":{kind}:", 1)[1].split(_REPLACING)[0]


def message(
    session: Session, rule: Rule, audience: Audience, now: datetime, *, subject: str,
    facts: dict, opted_out: OptedOut | None = None,
) -> dict:  # fmt: skip
    """`rule`'s message about `subject` for the audience, as an outbox row
    (`outbox.enqueue_many`): on the first channel the audience can receive,
    or suppressed with the reason nobody could be told."""
    shop, customer, order = audience.shop, audience.customer, audience.order
    where = plan(session, rule, audience, opted_out)
    order_facts = (
        {"order_name": order.name, "total": order.total_price, "currency": order.currency}
        if order is not None
        else {}
    )
    return outbox.message(
        shop_id=shop.id,
        key=key(audience, rule, subject),
        kind=rule.kind,
        category=rule.category,
        channel=where.channel,
        recipient=where.recipient,
        locale=(customer.locale if customer else None) or shop.locale,
        context={
            "customer_first_name": customer.first_name if customer else None,
            **order_facts,
            **facts,
        },
        now=now,
        customer_id=customer.id if customer else None,
        order_id=order.id if order else None,
        suppressed_because=where.suppressed_because,
        send_at=now + rule.wait,
        rule_id=rule.rule_id,
        quiet_hours=rule.quiet_hours,
    )


def notify(
    session: Session, rule: Rule, audience: Audience, now: datetime, *, subject: str, facts: dict
) -> bool:
    """Queue `rule`'s message about `subject` (or record why nobody could
    be told); False if the same message was queued already."""
    row = message(session, rule, audience, now, subject=subject, facts=facts)
    return bool(outbox.enqueue_many(session, [row]))
