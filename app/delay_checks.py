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

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import uuid4

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from app import flow, rule_book, shop_jobs
from app.audience import Audience, Rule, message, notify, replacing
from app.db import among, insert_rows, update_rows
from app.delays import CLOSED, CUSTOMER_CAUSES, Assessment, Calendar, Parcel, assess, promise_for
from app.models import (
    ChannelOptOut,
    Customer,
    DelayEpisode,
    Notification,
    Order,
    OrderEvent,
    Shipment,
    Shop,
)
from app.models import Rule as RuleRow
from notifications import outbox

JOB = "rules.sweep"  # the per-shop job that runs `sweep` (`app.jobs`)
SWEEP_BATCH = 500
SWEEP_LANES = 2  # threads of a large sweep on PostgreSQL (`sweep`)
# A delay found on an order placed this long ago is history (the history
# import, a shop installing with old open orders): recorded, not told.
TOO_OLD_TO_TELL = timedelta(days=30)
CLEARED = "cleared"  # an episode's resolution when its cause went away before the end


def spec(rule: RuleRow) -> Rule:
    """What `notify` needs of a merchant's rule."""
    return Rule(
        rule.template_kind, rule.category, tuple(rule_book.split(rule.channels)), rule.id,
        timedelta(minutes=rule.wait_minutes), rule.quiet_hours,
    )  # fmt: skip


def first_applicable(session: Session, order: Order, trigger: str) -> RuleRow | None:
    return _Rules(session, order.shop_id).first(order, trigger)


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
    calendar = Calendar.of(shop)
    promise = promise_for(order, shipments, calendar)
    parcels = [Parcel.of(s) for s in shipments]
    result = assess(
        order.state, order.shipping_country, parcels, promise, calendar, now,
        order.on_hold,
    )  # fmt: skip
    return result, shipments


def check_order(session: Session, order: Order, now: datetime) -> None:
    """Record and tell what is late about `order` now; schedule its next check."""
    check_orders(session, [order], now)


@dataclass(frozen=True)
class _Telling:
    """A delay to tell of: the order, and its episode's row (cause,
    shipment_id, promised_at, expected_at; `id` once stored)."""

    order: Order
    episode: dict
    escalated: bool = False
    # The id of a withdrawn message this telling replaces (`retell`): its
    # own outbox key, since the withdrawn one keeps its.
    replaces: int | None = None


class _Rules:
    """The shop's enabled rules, read once per batch."""

    def __init__(self, session: Session, shop_id: int):
        self.by_trigger: dict[str, list[RuleRow]] = {}
        for rule in session.exec(
            select(RuleRow).where(RuleRow.shop_id == shop_id, RuleRow.enabled)
        ).all():
            self.by_trigger.setdefault(rule.trigger, []).append(rule)
        for rules in self.by_trigger.values():
            rules.sort(key=rule_book.precedence)
        self.specs: dict[int, Rule] = {}

    def spec(self, rule: RuleRow) -> Rule:
        """`spec(rule)`, made once per batch."""
        if rule.id not in self.specs:
            self.specs[rule.id] = spec(rule)
        return self.specs[rule.id]

    def first(self, order: Order, trigger: str) -> RuleRow | None:
        """The rule that tells `order` about `trigger` (`rule_book.choose`)."""
        return rule_book.first_applying(self.by_trigger.get(trigger, ()), order)

    def escalation_due(self, order: Order, episode: DelayEpisode) -> datetime | None:
        """When an episode's one escalation is due: once told, after the
        rule's escalation amount (a delay that keeps growing)."""
        if episode.escalated_at is not None or episode.told_at is None:
            return None
        rule = self.first(order, rule_book.CAUSE_TRIGGER.get(episode.cause, ""))
        if rule is None or not rule.escalation_hours:
            return None
        return episode.detected_at + timedelta(hours=rule.escalation_hours)


def _grouped(rows, key) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    return grouped


def check_orders(session: Session, orders: list[Order], now: datetime) -> None:
    """`check_order` for a batch of one shop's orders, in a handful of
    statements for the whole batch: the sweep's cost per due order.
    `orders` are only read: loaded entities (a webhook's check), or the
    sweep's plain rows, which skip the ORM's bookkeeping for thousands."""
    if not orders:
        return
    shop_id = orders[0].shop_id
    shop = session.get(Shop, shop_id)
    calendar = Calendar.of(shop)
    ids = [o.id for o in orders]
    shipments = _grouped(session.exec(
        select(Shipment).where(Shipment.shop_id == shop_id, among(session, Shipment.order_id, ids))
        .order_by(Shipment.id)
    ).all(), lambda s: s.order_id)  # fmt: skip
    episodes = _grouped(session.exec(
        select(DelayEpisode).where(
            DelayEpisode.shop_id == shop_id, among(session, DelayEpisode.order_id, ids),
            DelayEpisode.resolved_at.is_(None),
        )
    ).all(), lambda e: e.order_id)  # fmt: skip
    rules = _Rules(session, shop_id)
    found: list[dict] = []
    escalations: list[tuple[Order, DelayEpisode]] = []
    next_check: dict[int, datetime | None] = {}
    for order in orders:
        if order.state in CLOSED:
            next_check[order.id] = None
            continue
        own = shipments.get(order.id, [])
        assessment = assess(
            order.state, order.shipping_country, [Parcel.of(s) for s in own],
            promise_for(order, own, calendar), calendar, now, order.on_hold,
        )  # fmt: skip
        known = {e.cause for e in episodes.get(order.id, [])}
        found += [
            {"shop_id": shop_id, "order_id": order.id, "shipment_id": f.shipment_id,
             "cause": f.cause, "detected_at": now, "promised_at": f.promised_at,
             "expected_at": f.expected_at, "told_at": None, "told_channel": None}
            for f in assessment.findings if f.cause not in known
        ]  # fmt: skip
        due = [assessment.next_check_at] if assessment.next_check_at else []
        current = {f.cause for f in assessment.findings}
        for episode in episodes.get(order.id, []):
            if episode.cause not in current:
                # The cause went away (the parcel left, a scan came, the
                # exception passed): never escalated; told of again only
                # at the delivery (the follow-up).
                episode.resolved_at, episode.resolution = now, CLEARED
                session.add(episode)
                continue
            escalation = rules.escalation_due(order, episode)
            if escalation is not None and escalation <= now:
                escalations.append((order, episode))
            elif escalation is not None:
                due.append(escalation)
        next_check[order.id] = min(due, default=None)
    by_id = {o.id: o for o in orders}
    telling = [_Telling(by_id[row["order_id"]], row) for row in found
               if row["cause"] in CUSTOMER_CAUSES]  # fmt: skip
    for order, episode in escalations:
        episode.escalated_at = now
        session.add(episode)
        telling.append(_Telling(order, episode.model_dump(), escalated=True))
    parcels = {s.id: s for own in shipments.values() for s in own}
    decisions = _decide(session, shop, rules, telling, parcels, now)
    # The channel of the message on its way goes in with the episode (one
    # statement, not an INSERT and then an UPDATE); `told_at` waits for the
    # message to leave (`rule_book.settled`).
    for decision in decisions:
        if decision.told:
            for episode in decision.episodes:
                episode.update(told_channel=decision.row["channel"])
    new = _insert_episodes(session, found)
    if new:
        flow.queue(session, shop_id, now)
    # A finding another check recorded first is that check's to tell.
    kept, dropped = [], []
    for decision in decisions:
        if decision.telling.escalated or decision.telling.episode.get("id"):
            kept.append(decision)
        elif decision.told:
            dropped.append(decision)
    _queue(session, kept, dropped, next_check, now)
    _store_next_checks(session, orders, next_check)


def _store_next_checks(
    session: Session, orders: list[Order], next_check: dict[int, datetime | None]
) -> None:
    """Write the batch's due times in one statement, and show them on the
    loaded orders without making the session write each order again."""
    changed = [o for o in orders if o.next_check_at != next_check[o.id]]
    update_rows(session, Order.__table__,
                [{"id": o.id, "next_check_at": next_check[o.id]} for o in changed])  # fmt: skip
    for order in changed:
        if isinstance(order, Order):
            set_committed_value(order, "next_check_at", next_check[order.id])


def _insert_episodes(session: Session, rows: list[dict]) -> int:
    """Insert new episodes in one statement; each row that went in gets its
    `id`. One per order and cause: a row another check inserted first is
    skipped (and keeps no id). Returns how many went in."""
    inserted = insert_rows(
        session, DelayEpisode.__table__, rows, returning=("id", "order_id", "cause")
    )
    by_key = {(r["order_id"], r["cause"]): r for r in rows}
    for episode_id, order_id, cause in inserted:
        by_key[(order_id, cause)]["id"] = episode_id
    return len(inserted)


@dataclass(frozen=True)
class _Decision:
    """What to do about one delay message: the outbox row to queue, or why
    nothing is sent (a line for the order's timeline). `covers`: the order's
    other delays found in the same check, told by this one message."""

    telling: _Telling
    rule_name: str | None
    escalation_hours: int | None
    row: dict | None = None
    why: str | None = None
    covers: tuple[_Telling, ...] = ()

    @property
    def told(self) -> bool:
        return (
            self.row is not None
            and self.row["status"] == outbox.QUEUED
            and not (self.telling.escalated)
        )

    @property
    def episodes(self) -> list[dict]:
        """The episodes this message tells of."""
        return [t.episode for t in (self.telling, *self.covers)]


# When one check finds several delays on an order (a parcel that stalled
# past its estimate), the customer gets one message, about the first of
# these that a rule tells of; it covers the others.
PRIORITY = ("exception", "estimate_passed", "stalled", "estimate_revised", "not_shipped")


def _one_per_order(telling: list[_Telling]) -> list[list[_Telling]]:
    """The tellings grouped by order, most pressing first; each escalation
    alone (it is about an episode told before)."""
    groups: dict[int, list[_Telling]] = {}
    alone = []
    for t in telling:
        if t.escalated:
            alone.append([t])
        else:
            groups.setdefault(t.order.id, []).append(t)
    for group in groups.values():
        group.sort(key=lambda t: PRIORITY.index(t.episode["cause"]))
    return [*groups.values(), *alone]


def _decide(
    session: Session, shop: Shop, rules: _Rules, telling: list[_Telling],
    parcels: dict[int, Shipment], now: datetime,
) -> list[_Decision]:  # fmt: skip
    """The batch's delay messages, built without writing anything: the
    customers and opt-outs are read once for the whole batch."""
    if not telling:
        return []
    wanted = {t.order.customer_id for t in telling if t.order.customer_id}
    customers = {
        c.id: c
        for c in session.exec(
            select(Customer).where(Customer.shop_id == shop.id, among(session, Customer.id, wanted))
        ).all()
    }
    audiences = {t.order.id: Audience(shop, customers.get(t.order.customer_id), t.order)
                 for t in telling}  # fmt: skip
    addresses = {a for au in audiences.values() for a in (au.email, au.phone) if a}
    opted = set(
        session.exec(
            select(ChannelOptOut.channel, ChannelOptOut.address).where(
                ChannelOptOut.shop_id == shop.id, among(session, ChannelOptOut.address, addresses)
            )
        ).all()
    )
    decisions = []
    for group in _one_per_order(telling):
        decisions.append(_decide_one(session, rules, group, audiences, parcels, opted, now))
    return decisions


def _decide_one(
    session: Session, rules: _Rules, group: list[_Telling], audiences: dict[int, Audience],
    parcels: dict[int, Shipment], opted: set, now: datetime,
) -> _Decision:  # fmt: skip
    """One order's message: about the first delay of `group` a rule tells of."""
    told_by = [(t, rules.first(t.order, rule_book.CAUSE_TRIGGER[t.episode["cause"]]))
               for t in group]  # fmt: skip
    t, rule = next(((t, rule) for t, rule in told_by if rule is not None), (group[0], None))
    others = tuple(other for other in group if other is not t)
    if rule is None:
        trigger = rule_book.CAUSE_TRIGGER[t.episode["cause"]]
        return _Decision(t, None, None, why=f"no enabled rule for {trigger} applies")
    placed = t.order.shopify_created_at or t.order.created_at
    if placed is not None and now - placed > TOO_OLD_TO_TELL:
        why = (f"rule {rule.name!r} not sent: stale (the order is over "
               f"{TOO_OLD_TO_TELL.days} days old)")  # fmt: skip
        return _Decision(t, rule.name, None, why=why)
    cause = t.episode["cause"]
    subject = f"order:{t.order.shopify_id}:{cause}" + (":escalation" if t.escalated else "")
    if t.replaces is not None:
        subject = replacing(subject, t.replaces)
    shipment = parcels.get(t.episode["shipment_id"])
    facts = {
        "cause": cause,
        "causes": [cause, *(other.episode["cause"] for other in others)],
        "promised_date": t.episode["promised_at"],
        "expected_date": t.episode["expected_at"],
        "escalated": t.escalated,
        **(shipment_facts(shipment) if shipment else {}),
    }
    row = message(
        session, rules.spec(rule), audiences[t.order.id], now, subject=subject, facts=facts,
        opted_out=lambda channel, address: (channel, address) in opted,
    )  # fmt: skip
    return _Decision(t, rule.name, rule.escalation_hours, row=row, covers=others)


def _queue(
    session: Session, decisions: list[_Decision], dropped: list[_Decision],
    next_check: dict[int, datetime | None], now: datetime,
) -> None:  # fmt: skip
    """Queue the decided messages in one INSERT, note on each order's
    timeline what was not sent, and set when each told order's escalation
    is due (in `next_check`). `dropped`: messages not queued after all,
    whose episodes were stored as told."""
    for decision in decisions:
        if decision.row is None:
            note(session, decision.telling.order, decision.why, now)
    queued = outbox.enqueue_many(session, [d.row for d in decisions if d.row is not None])
    for decision in decisions:
        if decision.row is None:
            continue
        order = decision.telling.order
        if decision.row["key"] not in queued:
            note(session, order, f"rule {decision.rule_name!r} not sent again: duplicate", now)
            dropped.append(decision)
        elif decision.told and decision.escalation_hours:
            escalation = now + timedelta(hours=decision.escalation_hours)
            current = next_check[order.id]
            next_check[order.id] = min(current, escalation) if current else escalation
    # Rare (a race, or a message queued before its episode existed): the
    # episodes stored with a message on its way that was not queued have none.
    untold = [
        {"id": episode["id"], "told_channel": None}
        for decision in dropped if decision.told
        for episode in decision.episodes if episode.get("id")
    ]  # fmt: skip
    update_rows(session, DelayEpisode.__table__, untold)


def retell(session: Session, withdrawn: list[Notification], now: datetime) -> None:
    """Delay messages withdrawn with their rule (switched off or deleted):
    each covered several delays of its order, some perhaps answered by
    rules still on. Those delays are decided again with the rules on now,
    as a check would, so none is left untold because another rule stopped.
    The rule being withdrawn must already be off (or gone) in `session`."""
    pairs: dict[tuple[int, str], int] = {}  # (order, cause) -> withdrawn message
    for notification in withdrawn:
        context = json.loads(notification.context)
        if notification.kind != "delay" or notification.order_id is None:
            continue
        if context.get("escalated"):
            continue  # about a delay told before: nothing left untold
        for cause in context.get("causes") or [context.get("cause")]:
            pairs[(notification.order_id, cause)] = notification.id
    if not pairs:
        return
    shop = session.get(Shop, withdrawn[0].shop_id)
    ids = {order_id for order_id, _ in pairs}
    orders = {o.id: o for o in session.exec(
        select(Order).where(Order.shop_id == shop.id, among(session, Order.id, ids))
    ).all() if o.state not in CLOSED}  # fmt: skip
    untold = session.exec(
        select(DelayEpisode)
        .where(
            DelayEpisode.shop_id == shop.id, among(session, DelayEpisode.order_id, orders),
            DelayEpisode.resolved_at.is_(None), DelayEpisode.told_at.is_(None),
            DelayEpisode.told_channel.is_(None),
        )
        .execution_options(populate_existing=True)  # `rule_book.settled` just wrote
    ).all()  # fmt: skip
    telling = [
        _Telling(orders[e.order_id], e.model_dump(), replaces=pairs[(e.order_id, e.cause)])
        for e in untold if (e.order_id, e.cause) in pairs and e.cause in CUSTOMER_CAUSES
    ]  # fmt: skip
    parcels = {s.id: s for s in session.exec(
        select(Shipment).where(Shipment.shop_id == shop.id, among(session, Shipment.order_id, ids))
    ).all()}  # fmt: skip
    decisions = _decide(session, shop, _Rules(session, shop.id), telling, parcels, now)
    update_rows(session, DelayEpisode.__table__, [
        {"id": episode["id"], "told_channel": decision.row["channel"]}
        for decision in decisions if decision.told for episode in decision.episodes
    ])  # fmt: skip
    next_check = {order.id: order.next_check_at for order in orders.values()}
    _queue(session, decisions, [], next_check, now)
    _store_next_checks(session, list(orders.values()), next_check)


def _open_episodes(session: Session, order: Order) -> list[DelayEpisode]:
    """The order's episodes not resolved yet."""
    return list(
        session.exec(
            select(DelayEpisode).where(
                DelayEpisode.shop_id == order.shop_id,
                DelayEpisode.order_id == order.id,
                DelayEpisode.resolved_at.is_(None),
            )
        ).all()
    )


def shipment_facts(shipment: Shipment) -> dict:
    return {
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "estimated_delivery": shipment.estimated_delivery_at,
    }


def order_closed(session: Session, order: Order, now: datetime) -> None:
    """The order was delivered, cancelled or refunded: its open delays are
    resolved; a delivered order whose delay the customer was told of gets
    the follow-up (its own rule), also for a delay that had cleared."""
    episodes = _open_episodes(session, order)
    for episode in episodes:
        episode.resolved_at, episode.resolution = now, order.state
        session.add(episode)
    episodes += session.exec(
        select(DelayEpisode).where(
            DelayEpisode.shop_id == order.shop_id,
            DelayEpisode.order_id == order.id,
            DelayEpisode.resolution == CLEARED,
        )
    ).all()
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


def sweep(engine, shop_id: int, now: datetime, batch: int | None = None) -> int:
    """Check every order of the shop whose due time has come; returns how
    many. Batches commit one by one, each holding its rows locked, so other
    workers can take the next batches beside this one: when the first batch
    is full, one more sweep job is queued for a free worker, which does the
    same in turn (a large sweep spreads over the free workers; each helper
    stops when nothing is left).

    A large sweep on PostgreSQL also runs in `SWEEP_LANES` threads, each
    taking batches on its own connection: while the server writes one
    lane's batch, Python decides another's (the GIL is released while a
    connection waits), so one worker keeps both the server and itself busy
    (bench/delay_sweep.py)."""
    batch = batch or SWEEP_BATCH
    checked = _check_batch(engine, shop_id, now, batch, ask_for_help=True)
    if checked < batch:
        return checked
    lanes = SWEEP_LANES if engine.dialect.name == "postgresql" else 1
    if lanes == 1:
        return checked + _check_until_done(engine, shop_id, now, batch)
    with ThreadPoolExecutor(lanes, thread_name_prefix="sweep") as pool:
        done = [pool.submit(_check_until_done, engine, shop_id, now, batch) for _ in range(lanes)]
        return checked + sum(lane.result() for lane in done)


# The order columns a check decides on (the rules' conditions, the promise,
# the audience): all the sweep reads of each due order. A column read
# elsewhere on that path fails there loudly (the rows have no lazy loads).
_DECIDED_ON = (
    "id", "shop_id", "shopify_id", "name", "customer_id", "email", "phone", "currency",
    "total_price", "state", "shopify_created_at", "created_at", "fulfill_by",
    "delivery_max_at", "on_hold", "shipping_country", "shipping_method", "tags",
    "next_check_at",
)  # fmt: skip


def _check_until_done(engine, shop_id: int, now: datetime, batch: int) -> int:
    checked = 0
    while True:
        taken = _check_batch(engine, shop_id, now, batch)
        checked += taken
        if taken < batch:
            return checked


def _check_batch(
    engine, shop_id: int, now: datetime, batch: int, ask_for_help: bool = False
) -> int:
    """Take up to `batch` due orders that no one else holds, check them, and
    commit; how many were taken. `ask_for_help`: queue a helper sweep job
    if the batch is full."""
    with Session(engine, expire_on_commit=False) as session:
        orders = list(
            session.exec(
                select(*(Order.__table__.c[name] for name in _DECIDED_ON))
                .where(Order.shop_id == shop_id, Order.next_check_at <= now)
                .order_by(Order.next_check_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
        )
        check_orders(session, orders, now)
        if ask_for_help and len(orders) == batch:
            shop_jobs.enqueue_once(session, shop_id, JOB, f"help:{uuid4().hex[:16]}", now)
        session.commit()
    return len(orders)


def change_delay_settings(session: Session, shop: Shop, change: dict, now: datetime) -> None:
    """Store validated delay settings (the API's and the settings page's)
    and check every open order again with them at the next sweep."""
    for name, value in change.items():
        if name == "transit_days_by_country":
            value = json.dumps(value, sort_keys=True)
        elif name == "holidays":
            value = ",".join(sorted({day.isoformat() for day in value}))
        setattr(shop, name, value)
    session.add(shop)
    recheck_open_orders(session, shop.id, now)
