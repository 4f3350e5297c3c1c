"""The proactive rules' pages: the list with on/off switches, a rule's form
with its preview, the template editor for a kind of message (the shop's
sandboxed override), and the notifications log with the dead letters'
retry. Thin: the decisions are `app.rule_book`, `app.rule_preview`,
`notifications.rendering` and `notifications.outbox`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

from flask import abort, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlmodel import Session, select

from app import notification_log, rule_book, rule_changes
from app.models import DelayEpisode, Order, Rule, Shipment, Shop
from app.rule_preview import preview
from app.web.context import runtime
from app.web.pages.base import bp, check_csrf, signed_in
from app.web.pages.home import Headline, home_headline
from app.web.params import ROW_ID_MAX, parse_whole_number
from notifications import outbox, rendering

CHANNEL_CHOICES = ("email,sms", "sms,email", "email", "sms")
LOG_PAGE = 100


def _rule(db: Session, rule_id: int) -> Rule:
    rule = db.exec(rule_book.of_shop(g.shop.id).where(Rule.id == rule_id)).first()
    if rule is None:
        abort(404, description=f"no rule {rule_id} in this shop")
    return rule


@bp.get("/rules")
@signed_in
def rules():
    with Session(runtime().engine) as db:
        rows = db.exec(rule_book.of_shop(g.shop.id).order_by(Rule.id)).all()
        # The merchant's own to look at: parcels whose tracking never started.
        problems = db.exec(
            select(DelayEpisode, Order.shopify_id, Order.name, Shipment.carrier,
                   Shipment.tracking_number)
            .join(Order, Order.id == DelayEpisode.order_id)
            .join(Shipment, Shipment.id == DelayEpisode.shipment_id, isouter=True)
            .where(DelayEpisode.shop_id == g.shop.id, DelayEpisode.cause == "tracking_problem",
                   DelayEpisode.resolved_at.is_(None))
            .order_by(DelayEpisode.detected_at.desc())
            .limit(LOG_PAGE)
        ).all()  # fmt: skip
    return render_template("app/rules.html", shop=g.shop, rules=rows, problems=problems,
                           never_fire=rule_book.never_fire(rows))  # fmt: skip


@bp.post("/rules/<row_id:rule_id>/switch")
@signed_in
def switch_rule(rule_id: int):
    check_csrf()
    rt = runtime()
    with Session(rt.engine) as db:
        rule = _rule(db, rule_id)
        was_enabled = rule.enabled
        rule.enabled = request.form.get("enabled") == "on"
        rule_changes.saved(db, rule, was_enabled, rt.clock.now())
        db.commit()
    return redirect(url_for("pages.rules"))


def _render_rule(db: Session, rule: Rule, problem: str | None = None, status: int = 200):
    found = preview(db, rule, runtime().clock.now())
    db.rollback()  # the preview decided; nothing of it is kept
    return render_template(
        "app/rule.html", shop=g.shop, rule=rule, problem=problem, preview=found,
        channel_choices=CHANNEL_CHOICES, locales=("en", "es", "ru"),
    ), status  # fmt: skip


@bp.get("/rules/<row_id:rule_id>")
@signed_in
def rule(rule_id: int):
    with Session(runtime().engine) as db:
        return _render_rule(db, _rule(db, rule_id))


def _optional_number(name: str, low: int, high: int) -> int | None:
    text = request.form.get(name, "").strip()
    if not text:
        return None
    value = parse_whole_number(text, low, high)
    if value is None:
        raise rule_book.RuleProblem(name, _("a whole number from %(low)s to %(high)s",
                                            low=low, high=high))  # fmt: skip
    return value


def _form_values() -> dict:
    """The form, read into a rule's columns; RuleProblem names a bad field."""
    channels = request.form.get("channels", "")
    if channels not in CHANNEL_CHOICES:
        raise rule_book.RuleProblem("channels", _("choose one of the options"))
    money = request.form.get("min_order_value", "").strip()
    # ASCII digits and cents only: Decimal() also reads "١٢", "1_000", "1e2" and "NaN".
    if money and not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,2})?", money):
        raise rule_book.RuleProblem("min_order_value", _("an amount such as 50.00"))
    minimum = Decimal(money) if money else None
    name = request.form.get("name", "").strip()  # rule_book.check says what is wrong with it
    lists = {}
    for field in ("countries", "tags", "shipping_methods"):
        items = rule_book.split(request.form.get(field, ""))
        if field == "countries":
            items = [item.upper() for item in items]
        text = ",".join(items)
        if len(text) > 1000 or not text.isprintable():
            raise rule_book.RuleProblem(field, _("a comma-separated list of up to 1000 characters"))
        lists[field] = text
    return {
        "name": name,
        "enabled": request.form.get("enabled") == "on",
        "channels": channels,
        "wait_minutes": _optional_number("wait_minutes", 0, 43_200) or 0,
        "quiet_hours": request.form.get("quiet_hours") == "on",
        "min_order_value": minimum,
        "escalation_hours": _optional_number("escalation_hours", 1, 720),
        **lists,
    }


@bp.post("/rules/<row_id:rule_id>")
@signed_in
def save_rule(rule_id: int):
    check_csrf()
    rt = runtime()
    with Session(rt.engine) as db:
        rule = _rule(db, rule_id)
        was_enabled = rule.enabled
        try:
            for name, value in _form_values().items():
                setattr(rule, name, value)
            rule_book.check(rule)
        except rule_book.RuleProblem as problem:
            return _render_rule(db, rule, f"{problem.field}: {problem.reason}", 422)
        rule_changes.saved(db, rule, was_enabled, rt.clock.now())
        db.commit()
    return redirect(url_for("pages.rule", rule_id=rule_id))


# --- the notifications log -----------------------------------------------------------


@bp.get("/notifications")
@signed_in
def notifications():
    filters = {name: request.args.get(name) or None for name in ("kind", "status", "channel")}
    if filters["kind"] and filters["kind"] not in rendering.KINDS:
        abort(400, description=f"unknown kind {filters['kind']!r}")
    if filters["status"] and filters["status"] not in notification_log.STATUSES:
        abort(400, description=f"unknown status {filters['status']!r}")
    if filters["channel"] and filters["channel"] not in rendering.CHANNELS:
        abort(400, description=f"unknown channel {filters['channel']!r}")
    cursor = request.args.get("cursor", "")
    before = parse_whole_number(cursor, 1, ROW_ID_MAX) if cursor else None
    if cursor and before is None:
        abort(400, description=_("cursor must be the number from a “next page” link"))
    with Session(runtime().engine) as db:
        entries, next_cursor = notification_log.page(
            db, g.shop.id, notification_log.Filters(**filters), before, LOG_PAGE
        )
    return render_template(
        "app/rules_log.html", shop=g.shop, entries=entries, filters=filters,
        next_cursor=next_cursor, first_page=before is None, kinds=sorted(rendering.KINDS),
        statuses=notification_log.STATUSES, channels=rendering.CHANNELS,
    )  # fmt: skip


@bp.post("/notifications/<row_id:notification_id>/retry")
@signed_in
def retry_notification(notification_id: int):
    check_csrf()
    if notification_id > ROW_ID_MAX:
        abort(404)
    rt = runtime()
    with Session(rt.engine) as db:
        stopped = rule_book.stopped_rule(db, g.shop.id, notification_id)
        if stopped:
            abort(409, description=_("Its rule “%(name)s” is off or deleted: switch a rule on to "
                                     "send such messages again.", name=stopped))  # fmt: skip
        if not outbox.retry_dead(db, g.shop.id, notification_id, rt.clock.now()):
            abort(409, description=_("Only a dead letter of this shop can be retried."))
        db.commit()
    rt.inbox_wakeup.set()
    return redirect(url_for("pages.notifications", status=outbox.QUEUED))


@home_headline
def delays_headline(session: Session, shop: Shop, now: datetime) -> Headline | None:
    """The last 7 days' customer-facing delays and how many were told."""
    since = now - timedelta(days=7)
    rows = session.exec(
        select(DelayEpisode.told_at).where(
            DelayEpisode.shop_id == shop.id,
            DelayEpisode.detected_at >= since,
            DelayEpisode.cause != "tracking_problem",
        )
    ).all()
    if not rows:
        return None
    told = sum(1 for at in rows if at is not None)
    return Headline(
        title=_("Delays found, last 7 days"),
        figure=str(len(rows)),
        detail=_("%(told)s of %(n)s told to the customer", told=told, n=len(rows)),
        endpoint="pages.rules",
    )
