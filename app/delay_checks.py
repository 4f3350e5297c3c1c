"""Delays as rows, and the messages they cause: the database side of
`app.delays`.

`check_order` runs whenever an order's facts change (from `app.rules.react`,
in the transaction that applied them) and when its stored due time comes
(`sweep`, a per-shop job). It records each delay once per order and cause
(`DelayEpisode`, unique), tells the customer through the shop's enabled rule
for that cause, escalates once when the delay has grown by the rule's
amount, and stores in `orders.next_check_at` the next moment anything can
become due. The sweep reads only orders whose moment has come, through the
index on (shop_id, next_check_at): its cost follows what is due, not how
many orders are open.

Running a check twice, or two sweeps at once, tells nobody twice: an episode
is inserted once (the unique key decides), and messages carry unique keys in
the outbox. On PostgreSQL the sweep locks the rows it takes (`FOR UPDATE
SKIP LOCKED`), so two workers split the due orders between them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from app import flow, rule_book
from app.audience import Audience, Rule, key, notify
from app.db import insert_ignoring_conflicts
from app.delays import (
    CLOSED,
    CUSTOMER_CAUSES,
    Assessment,
    Calendar,
    Finding,
    Parcel,
    assess,
    promise_for,
)
from app.models import (
    DelayEpisode,
    Notification,
    Order,
    OrderEvent,
    Shipment,
    Shop,
)
from app.models import (
    Rule as RuleRow,
)
from notifications import outbox

SWEEP_BATCH = 500
# A delay found on an order placed this long ago is history (the history
# import, a shop installing with old open orders): recorded, not told.
TOO_OLD_TO_TELL = timedelta(days=30)


def spec(rule: RuleRow) -> Rule:
    """What `notify` needs of a merchant's rule."""
    return Rule(
        rule.template_kind, rule.category, tuple(rule_book.split(rule.channels)), rule.id,
        timedelta(minutes=rule.wait_minutes), rule.quiet_hours,
    )  # fmt: skip


def first_applicable(session: Session, order: Order, trigger: str) -> RuleRow | None:
    return next(
        (r for r in rule_book.enabled_rules(session, order.shop_id, trigger)
         if rule_book.applies(r, order)),
        None,
    )  # fmt: skip


def _shipments(session: Session, order: Order) -> list[Shipment]:
    return list(
        session.exec(
            select(Shipment)
            .where(Shipment.shop_id == order.shop_id, Shipment.order_id == order.id)
            .order_by(Shipment.id)
        ).all()
    )


def evaluate(session: Session, order: Order, now: datetime) -> tuple[Assessment, list[Shipment]]:
    """The order's delays at `now`, without writing anything (the preview)."""
    shop = session.get(Shop, order.shop_id)
    shipments = _shipments(session, order)
    promise = promise_for(order, shipments, shop)
    parcels = [Parcel.of(s) for s in shipments]
    result = assess(order.state, order.shipping_country, parcels, promise, Calendar.of(shop), now)
    return result, shipments


def check_order(session: Session, order: Order, now: datetime) -> None:
    """Record and tell what is late about `order` now; schedule its next check."""
    if order.state in CLOSED:
        order.next_check_at = None
        session.add(order)
        return
    assessment, shipments = evaluate(session, order, now)
    by_id = {s.id: s for s in shipments}
    for finding in assessment.findings:
        _open_episode(session, order, finding, by_id.get(finding.shipment_id), now)
    due = [assessment.next_check_at] if assessment.next_check_at else []
    for episode in _open_episodes(session, order):
        escalation = _escalation_due(session, order, episode)
        if escalation is None:
            continue
        if escalation <= now:
            _escalate(session, order, episode, by_id.get(episode.shipment_id), now)
        else:
            due.append(escalation)
    order.next_check_at = min(due, default=None)
    session.add(order)


def _open_episodes(session: Session, order: Order) -> list[DelayEpisode]:
    return list(
        session.exec(
            select(DelayEpisode).where(
                DelayEpisode.shop_id == order.shop_id,
                DelayEpisode.order_id == order.id,
                DelayEpisode.resolved_at.is_(None),
            )
        ).all()
    )


def _open_episode(
    session: Session, order: Order, finding: Finding, shipment: Shipment | None, now: datetime
) -> None:
    episode_id = insert_ignoring_conflicts(
        session,
        DelayEpisode.__table__,
        {
            "shop_id": order.shop_id, "order_id": order.id, "shipment_id": finding.shipment_id,
            "cause": finding.cause, "detected_at": now, "promised_at": finding.promised_at,
            "expected_at": finding.expected_at,
        },
    )  # fmt: skip
    if episode_id is None:
        return  # known already: at most once per order and cause
    flow.queue(session, order.shop_id, now)
    episode = session.get(DelayEpisode, episode_id)
    if finding.cause in CUSTOMER_CAUSES:
        _tell(session, order, episode, shipment, now, escalated=False)


def _tell(
    session: Session, order: Order, episode: DelayEpisode, shipment: Shipment | None,
    now: datetime, *, escalated: bool,
) -> None:  # fmt: skip
    trigger = rule_book.CAUSE_TRIGGER[episode.cause]
    rule = first_applicable(session, order, trigger)
    if rule is None:
        note(session, order, f"no enabled rule for {trigger} applies", now)
        return
    placed = order.shopify_created_at or order.created_at
    subject = f"order:{order.shopify_id}:{episode.cause}" + (":escalation" if escalated else "")
    if placed is not None and now - placed > TOO_OLD_TO_TELL:
        note(session, order, f"rule {rule.name!r} not sent: stale (the order is over "
             f"{TOO_OLD_TO_TELL.days} days old)", now)  # fmt: skip
        return
    audience = Audience.of_order(session, order)
    facts = {
        "cause": episode.cause,
        "promised_date": episode.promised_at,
        "expected_date": episode.expected_at,
        "escalated": escalated,
        **(shipment_facts(shipment) if shipment else {}),
    }
    if not notify(session, spec(rule), audience, now, subject=subject, facts=facts):
        note(session, order, f"rule {rule.name!r} not sent again: duplicate", now)
        return
    queued = session.exec(
        select(Notification).where(
            Notification.shop_id == order.shop_id,
            Notification.key == key(audience, spec(rule), subject),
        )
    ).first()
    if queued is not None and queued.status == outbox.QUEUED and not escalated:
        # Told: the message is on its way (the outbox row says when it left).
        episode.told_at, episode.told_channel = now, queued.channel
        session.add(episode)


def shipment_facts(shipment: Shipment) -> dict:
    return {
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "estimated_delivery": shipment.estimated_delivery_at,
    }


def _escalation_due(session: Session, order: Order, episode: DelayEpisode) -> datetime | None:
    """When this episode's one escalation is due: once told, after the
    rule's escalation amount (a delay that keeps growing)."""
    if episode.escalated_at is not None or episode.told_at is None:
        return None
    rule = first_applicable(session, order, rule_book.CAUSE_TRIGGER.get(episode.cause, ""))
    if rule is None or not rule.escalation_hours:
        return None
    return episode.detected_at + timedelta(hours=rule.escalation_hours)


def _escalate(
    session: Session, order: Order, episode: DelayEpisode, shipment: Shipment | None,
    now: datetime,
) -> None:  # fmt: skip
    episode.escalated_at = now
    session.add(episode)
    _tell(session, order, episode, shipment, now, escalated=True)


def order_closed(session: Session, order: Order, now: datetime) -> None:
    """The order was delivered, cancelled or refunded: its open delays are
    resolved; a delivered order whose delay the customer was told of gets
    the follow-up (its own rule)."""
    episodes = _open_episodes(session, order)
    for episode in episodes:
        episode.resolved_at, episode.resolution = now, order.state
        session.add(episode)
    order.next_check_at = None
    session.add(order)
    if order.state == "delivered" and any(e.cause in CUSTOMER_CAUSES for e in episodes):
        flow.queue(session, order.shop_id, now)  # "Order delivered late"
    told = [e for e in episodes if e.told_at is not None]
    if order.state != "delivered" or not told:
        return
    rule = first_applicable(session, order, "delay_delivered_followup")
    if rule is None:
        return
    facts = {"promised_date": min((e.promised_at for e in told if e.promised_at), default=None)}
    notify(session, spec(rule), Audience.of_order(session, order), now,
           subject=f"order:{order.shopify_id}", facts=facts)  # fmt: skip


def note(session: Session, order: Order, why: str, now: datetime) -> None:
    """A rule decision worth a line in the order's timeline (why nothing
    was sent); the messages themselves are on the timeline from the outbox."""
    session.add(
        OrderEvent(
            shop_id=order.shop_id, order_id=order.id, kind="rule", from_status=None,
            to_status="not_sent", cause=why[:128], occurred_at=now, recorded_at=now,
        )
    )  # fmt: skip


def recheck_open_orders(session: Session, shop_id: int, now: datetime) -> None:
    """The shop's delay settings changed: every open order is due for a
    check with them (one UPDATE; the next sweep does the checking)."""
    session.exec(
        update(Order)
        .where(Order.shop_id == shop_id, Order.state.not_in(CLOSED))
        .values(next_check_at=now)
    )


def sweep(engine, shop_id: int, now: datetime, batch: int = SWEEP_BATCH) -> int:
    """Check every order of the shop whose due time has come; returns how
    many. Batches commit one by one, each holding its rows locked."""
    checked = 0
    while True:
        with Session(engine) as session:
            orders = list(
                session.exec(
                    select(Order)
                    .where(Order.shop_id == shop_id, Order.next_check_at <= now)
                    .order_by(Order.next_check_at)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                ).all()
            )
            for order in orders:
                check_order(session, order, now)
            session.commit()
        checked += len(orders)
        if len(orders) < batch:
            return checked
