"""Who a rule would tell right now, and what, sending nothing: the same
decisions as `app.rules` and `app.delay_checks` (conditions, staleness,
channel choice, consent, what was told already), read-only.

A delay rule lists the open orders that have its cause now and have not
been told of it; a shipping-stage rule, the parcels at its stage whose news
is fresh and whose message was not queued. Bounded to the orders whose due
time is nearest (`LIMIT`), so a preview costs the same in a large shop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from app import rule_book
from app.audience import Audience, key, plan
from app.delay_checks import TOO_OLD_TO_TELL, evaluate, spec
from app.delays import CLOSED
from app.models import DelayEpisode, Notification, Order, Rule, Shipment
from app.rules import STAGES, STALE_AFTER, UNDER_WAY, never_told, shipped_news_at

LIMIT = 200


@dataclass(frozen=True)
class WouldTell:
    order_shopify_id: int
    order_name: str | None
    kind: str
    about: str  # the delay's cause, or the parcel
    channel: str
    recipient: str
    not_sent_because: str | None  # None: it would go


def preview(session: Session, rule: Rule, now: datetime) -> list[WouldTell]:
    """An order another rule for the trigger comes first for (more specific,
    or as specific and older) is listed with that rule's name: it is the
    one that tells. A rule switched off is previewed as if it were on."""
    causes = rule_book.TRIGGERS[rule.trigger][1]
    rivals = [r for r in rule_book.enabled_rules(session, rule.shop_id, rule.trigger)
              if r.id != rule.id] + [rule]  # fmt: skip
    if causes:
        return _delays(session, rule, rivals, set(causes), now)
    if rule.trigger in STAGES or rule.trigger == "shipped":
        return _stages(session, rule, rivals, now)
    return []  # follow-ups and birthdays have nothing due "right now" to show


def _open_orders(session: Session, shop_id: int):
    return session.exec(
        select(Order)
        .where(
            Order.shop_id == shop_id,
            Order.state.not_in(CLOSED),
            Order.snapshot_updated_at.is_not(None),
        )
        .order_by(Order.next_check_at.is_(None), Order.next_check_at, Order.id.desc())
        .limit(LIMIT)
    ).all()


def _entry(
    session: Session, rule: Rule, rivals: list[Rule], order: Order, subject: str, about: str,
    why_not: str | None = None,
):  # fmt: skip
    if not rule_book.applies(rule, order):
        return None
    chosen = rule_book.choose(rivals, order)
    if chosen is not rule:
        why_not = why_not or f"rule {chosen.name!r} tells this order instead: it comes first"
    audience = Audience.of_order(session, order)
    message = spec(rule)
    queued = session.exec(
        select(Notification.id).where(
            Notification.shop_id == rule.shop_id,
            Notification.key == key(audience, message, subject),
        )
    ).first()
    if queued is not None:
        return None
    where = plan(session, message, audience)
    return WouldTell(
        order.shopify_id, order.name, rule.template_kind, about, where.channel, where.recipient,
        why_not or where.suppressed_because,
    )  # fmt: skip


def _delays(
    session: Session, rule: Rule, rivals: list[Rule], causes: set[str], now: datetime
) -> list[WouldTell]:
    found = []
    for order in _open_orders(session, rule.shop_id):
        assessment, _ = evaluate(session, order, now)
        known = set(
            session.exec(
                select(DelayEpisode.cause).where(
                    DelayEpisode.shop_id == order.shop_id, DelayEpisode.order_id == order.id
                )
            ).all()
        )
        placed = order.shopify_created_at or order.created_at
        stale = (
            f"stale: the order is over {TOO_OLD_TO_TELL.days} days old"
            if placed is not None and now - placed > TOO_OLD_TO_TELL
            else None
        )
        for finding in assessment.findings:
            if finding.cause in causes and finding.cause not in known:
                subject = f"order:{order.shopify_id}:{finding.cause}"
                entry = _entry(session, rule, rivals, order, subject, finding.cause, stale)
                if entry:
                    found.append(entry)
    return found


def _stages(session: Session, rule: Rule, rivals: list[Rule], now: datetime) -> list[WouldTell]:
    if rule.trigger == "shipped":
        statuses, fresh_for = UNDER_WAY, None
    else:
        status, fresh_for = STAGES[rule.trigger]
        statuses = {status}
    rows = session.exec(
        select(Order, Shipment)
        .join(Shipment, Shipment.order_id == Order.id)
        .where(
            Order.shop_id == rule.shop_id,
            Shipment.shop_id == rule.shop_id,
            Shipment.status.in_(statuses),
            Order.snapshot_updated_at.is_not(None),
        )
        .order_by(Shipment.source_updated_at.desc())
        .limit(LIMIT)
    ).all()
    found = []
    for order, shipment in rows:
        news_at = shipment.source_updated_at
        if rule.trigger == "shipped":
            news_at = shipped_news_at(shipment, news_at)
        if never_told(order) or now - news_at > (fresh_for or STALE_AFTER):
            continue
        subject = (
            f"order:{order.shopify_id}"
            if rule.trigger == "shipped"
            else f"shipment:{shipment.source}:{shipment.external_id}"
        )
        about = f"{shipment.source}:{shipment.external_id}"
        entry = _entry(session, rule, rivals, order, subject, about)
        if entry:
            found.append(entry)
    return found
