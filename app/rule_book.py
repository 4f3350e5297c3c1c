"""A shop's proactive rules as data (`models.Rule`): the triggers there are,
the rules a shop starts with, what makes a rule valid, and whether a rule
applies to an order. Deciding *when* a trigger fires is `app.rules`
(events) and `app.delay_checks` (time); this module only says what the
merchant asked for.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import tuple_, update
from sqlmodel import Session, select

from app.countries import country_problem
from app.models import DelayEpisode, Notification, NotificationEvent, Order, Rule
from notifications import outbox, policy

# trigger -> (the template kind it uses by default, the delay cause it
# answers to, or None for a shipping stage or a follow-up).
TRIGGERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "shipped": ("shipping", ()),
    "out_for_delivery": ("out_for_delivery", ()),
    "ready_for_pickup": ("ready_for_pickup", ()),
    "delivered": ("delivered", ()),
    "delay_not_shipped": ("delay", ("not_shipped",)),
    "delay_estimate": ("delay", ("estimate_revised", "estimate_passed")),
    "delay_stalled": ("delay", ("stalled",)),
    "delay_exception": ("delay", ("exception",)),
    "delay_delivered_followup": ("delay_followup", ()),
    # Time-driven by the customer's birth date (`app.birthdays`).
    "birthday": ("birthday", ()),
}
STAGE_TRIGGERS = ("shipped", "out_for_delivery", "ready_for_pickup", "delivered")
CAUSE_TRIGGER = {cause: t for t, (_, causes) in TRIGGERS.items() for cause in causes}
CHANNELS = ("email", "sms")
# A rule's lists, as the API bounds them (app.web.schemas.RuleFields); the
# page's form is held to the same here, so that every stored rule reads back.
MAX_LABELS, MAX_LABEL_LENGTH, MAX_COUNTRIES, MAX_NAME_LENGTH = 15, 60, 100, 120
DEFAULT_ESCALATION_HOURS = 72
CONDITIONS = ("min_order_value", "countries", "tags", "shipping_methods")  # on the order


@dataclass(frozen=True)
class Default:
    name: str
    trigger: str
    channels: str = "email,sms"
    enabled: bool = True
    escalation_hours: int | None = None
    category: str = policy.TRANSACTIONAL


# What a shop starts with: every shipping stage and every delay, one
# escalation three days into a delay, a follow-up on late delivery. The
# delivered notice is off: most customers know when the parcel is at the door.
DEFAULTS = (
    Default("Shipped", "shipped"),
    Default("Out for delivery", "out_for_delivery", "sms,email"),
    Default("Ready for pickup", "ready_for_pickup"),
    Default("Delivered", "delivered", enabled=False),
    Default("Not shipped on time", "delay_not_shipped", escalation_hours=DEFAULT_ESCALATION_HOURS),
    Default(
        "Delivery estimate slipped", "delay_estimate", escalation_hours=DEFAULT_ESCALATION_HOURS
    ),
    Default("Parcel stalled", "delay_stalled", escalation_hours=DEFAULT_ESCALATION_HOURS),
    Default("Delivery problem", "delay_exception"),
    Default("Delayed order delivered", "delay_delivered_followup"),
    # Marketing: only customers who consented are greeted.
    Default("Birthday greeting", "birthday", category=policy.MARKETING),
)


def create_defaults(session: Session, shop_id: int, now: datetime) -> int:
    """The default rules, for a shop that has none yet (an install, a
    reinstall keeps the merchant's); returns how many were created."""
    if session.exec(select(Rule.id).where(Rule.shop_id == shop_id)).first() is not None:
        return 0
    for default in DEFAULTS:
        session.add(
            Rule(
                shop_id=shop_id, name=default.name, trigger=default.trigger,
                enabled=default.enabled, template_kind=TRIGGERS[default.trigger][0],
                channels=default.channels, category=default.category,
                escalation_hours=default.escalation_hours, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    session.flush()
    return len(DEFAULTS)


class RuleProblem(ValueError):
    """A rule that cannot work: the field and the reason."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def check(rule: Rule) -> None:
    """Raise `RuleProblem` for the first thing that makes `rule` unusable."""
    if not any(unicodedata.category(c)[0] not in "ZC" for c in rule.name or ""):
        raise RuleProblem("name", "a name with something to read (not only blanks)")
    if any(unicodedata.category(c) == "Cc" for c in rule.name):
        raise RuleProblem("name", "a name on one line, without control characters")
    if len(rule.name) > MAX_NAME_LENGTH:
        raise RuleProblem("name", f"at most {MAX_NAME_LENGTH} characters")
    if rule.trigger not in TRIGGERS:
        raise RuleProblem("trigger", f"unknown trigger; one of {', '.join(TRIGGERS)}")
    own_kind = TRIGGERS[rule.trigger][0]
    if rule.template_kind != own_kind:
        # Each kind's templates are written for its trigger's facts: a
        # "shipped" notice with survey templates could never be rendered.
        raise RuleProblem("template_kind", f"a {rule.trigger} rule uses {own_kind!r} templates")
    channels = split(rule.channels)
    if not channels:
        raise RuleProblem("channels", "name at least one channel")
    if len(set(channels)) != len(channels) or not set(channels) <= set(CHANNELS):
        raise RuleProblem("channels", "email and/or sms, each at most once")
    if rule.trigger == "birthday" and rule.category != policy.MARKETING:
        raise RuleProblem("category", "a birthday greeting is marketing: consent is required")
    if rule.category not in (policy.TRANSACTIONAL, policy.MARKETING):
        raise RuleProblem("category", "transactional or marketing")
    if rule.trigger == "birthday" and specificity(rule):
        field = next(f for f in CONDITIONS if getattr(rule, f))
        raise RuleProblem(field, "a birthday greeting is about no order: no order conditions")
    causes = TRIGGERS[rule.trigger][1]
    if rule.escalation_hours is not None and not causes:
        raise RuleProblem("escalation_hours", "only a delay rule escalates")
    for field in ("name", "tags", "shipping_methods"):
        try:
            str(getattr(rule, field) or "").encode("utf-8")
        except UnicodeEncodeError:
            raise RuleProblem(field, "text with a character that is not Unicode") from None
    for field in ("tags", "shipping_methods"):
        labels = split(getattr(rule, field))
        if len(labels) > MAX_LABELS or any(len(label) > MAX_LABEL_LENGTH for label in labels):
            raise RuleProblem(field, f"at most {MAX_LABELS}, each of at most "
                                     f"{MAX_LABEL_LENGTH} characters")  # fmt: skip
    if len(split(rule.countries)) > MAX_COUNTRIES:
        raise RuleProblem("countries", f"at most {MAX_COUNTRIES} countries")
    for country in split(rule.countries):
        if problem := country_problem(country):
            raise RuleProblem("countries", problem)


def split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def applies(rule: Rule, order: Order | None) -> bool:
    """Whether the rule's conditions hold for the order (a rule with none
    holds for every order)."""
    if order is None:
        return not (rule.min_order_value or rule.countries or rule.tags or rule.shipping_methods)
    if rule.min_order_value is not None and (order.total_price or Decimal(0)) < Decimal(
        rule.min_order_value
    ):
        return False
    countries = _parts(rule.countries, False)
    if countries and order.shipping_country not in countries:
        return False
    tags = _parts(rule.tags, True)
    if tags and not tags & _parts(order.tags, True):
        return False
    methods = _parts(rule.shipping_methods, True)
    return not (methods and (order.shipping_method or "").lower() not in methods)


def specificity(rule: Rule) -> int:
    """How many of the rule's conditions can turn an order away: where
    several enabled rules for one trigger apply to an order, the most
    specific tells. A minimum of 0 and a list of blanks turn none away."""
    return sum((
        bool(rule.min_order_value), bool(split(rule.countries)), bool(split(rule.tags)),
        bool(split(rule.shipping_methods)),
    ))  # fmt: skip


def precedence(rule: Rule) -> tuple[int, int]:
    """The order rules are tried in: the most specific first, then the
    oldest. A specific rule added beside the default catch-all therefore
    takes over the orders it names, and leaves it the rest."""
    return (-specificity(rule), rule.id or 0)


def choose(rules: Iterable[Rule], order: Order | None) -> Rule | None:
    """The rule among `rules` (one trigger's enabled rules) that tells
    about `order`: the first by `precedence` whose conditions hold."""
    return first_applying(sorted(rules, key=precedence), order)


def first_applying(ordered: Iterable[Rule], order: Order | None) -> Rule | None:
    """`choose` over rules already in `precedence` (a sweep sorts them once
    per batch, not once per order)."""
    return next((r for r in ordered if applies(r, order)), None)


def never_fire(rules: Iterable[Rule]) -> dict[int, Rule]:
    """Enabled rules that can never tell anyone, each with the rule that
    takes their orders: one of the same trigger that comes first (by
    `precedence`) and applies to every order they apply to. The rules page
    says so."""
    shadowed: dict[int, Rule] = {}
    ordered = sorted((r for r in rules if r.enabled), key=precedence)
    for position, rule in enumerate(ordered):
        first = next(
            (s for s in ordered[:position] if s.trigger == rule.trigger and _covers(s, rule)), None
        )
        if first is not None:
            shadowed[rule.id] = first
    return shadowed


def _covers(first: Rule, rule: Rule) -> bool:
    """Whether `first` applies to every order `rule` applies to."""
    if first.min_order_value and not (
        rule.min_order_value and Decimal(rule.min_order_value) >= Decimal(first.min_order_value)
    ):
        return False
    for field, lowered in (("countries", False), ("tags", True), ("shipping_methods", True)):
        wider, narrower = (
            _parts(getattr(first, field), lowered),
            _parts(getattr(rule, field), lowered),
        )
        if wider and not (narrower and narrower <= wider):
            return False
    return True


@lru_cache(maxsize=4096)
def _parts(text: str | None, lowered: bool) -> frozenset[str]:
    """A comma-separated list as a set, parsed once per distinct text: a
    sweep asks the same few rules about thousands of orders."""
    return frozenset(part.lower() if lowered else part for part in split(text))


def of_shop(shop_id: int):
    """The shop's rules, as the API and the pages list and find them: not
    the deleted ones."""
    return select(Rule).where(Rule.shop_id == shop_id, Rule.deleted_at.is_(None))


def enabled_rules(session: Session, shop_id: int, trigger: str) -> list[Rule]:
    """The shop's enabled rules for `trigger`, in `precedence`."""
    rules = session.exec(
        select(Rule).where(Rule.shop_id == shop_id, Rule.trigger == trigger, Rule.enabled)
    ).all()
    return sorted(rules, key=precedence)


def stopped_rule(session: Session, shop_id: int, notification_id: int) -> str | None:
    """The name of the rule that queued a message, when that rule is now off
    or deleted: a dead letter of it is not sent by hand (the merchant said
    stop, as its queued messages were withdrawn)."""
    rule = session.exec(
        select(Rule)
        .join(Notification, Notification.rule_id == Rule.id)
        .where(Notification.shop_id == shop_id, Notification.id == notification_id,
               Rule.shop_id == shop_id)
    ).first()  # fmt: skip
    return rule.name if rule is not None and not rule.enabled else None


def withdraw_queued(session: Session, rule: Rule, why: str, now: datetime) -> list[Notification]:
    """A rule switched off or deleted: its messages still waiting in the
    outbox are suppressed with the reason (the merchant said stop), and
    returned. Sent ones stay on record."""
    waiting = list(
        session.exec(
            select(Notification)
            .where(
                Notification.shop_id == rule.shop_id,
                Notification.rule_id == rule.id,
                Notification.status == outbox.QUEUED,
            )
            # Held until commit: a worker claiming one of them meanwhile
            # (SKIP LOCKED) passes it by, so none is both sent and withdrawn.
            .with_for_update()
        ).all()
    )
    if not waiting:
        return []
    session.exec(
        update(Notification)
        .where(Notification.id.in_([n.id for n in waiting]))
        .values(status=outbox.SUPPRESSED, status_detail=why, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    for notification in waiting:
        session.add(
            NotificationEvent(
                shop_id=rule.shop_id, notification_id=notification.id,
                status=outbox.SUPPRESSED, detail=why, at=now,
            )
        )  # fmt: skip
    settled(session, [(n, outbox.SUPPRESSED, now) for n in waiting])
    return waiting


def settled(session: Session, messages: list[tuple[Notification, str, datetime]]) -> None:
    """The outbox's word on delay messages: one that left tells its
    episodes (`told_at`: when it left, so "told before the customer asked"
    compares real times, quiet hours included); one that never will (failed,
    dead, suppressed when it was due) leaves them untold. One UPDATE per
    outcome, whatever the size of the batch."""
    episodes: dict[tuple, list[tuple[int, str]]] = {}  # outcome -> (order_id, cause)
    for notification, status, at in messages:
        if notification.kind != "delay" or notification.order_id is None:
            continue
        context = json.loads(notification.context)
        if context.get("escalated"):
            continue
        # A dead letter retried and sent tells too: its channel is set again.
        outcome = (at, notification.channel) if status == outbox.SENT else (None, None)
        causes = context.get("causes") or [context.get("cause")]
        episodes.setdefault((notification.shop_id, *outcome), []).extend(
            (notification.order_id, cause) for cause in causes
        )
    for (shop_id, told_at, channel), which in episodes.items():
        values = {"told_channel": channel} | ({"told_at": told_at} if told_at else {})
        session.exec(
            update(DelayEpisode)
            .where(
                DelayEpisode.shop_id == shop_id,
                tuple_(DelayEpisode.order_id, DelayEpisode.cause).in_(which),
                DelayEpisode.told_at.is_(None),
            )
            .values(**values)
        )
