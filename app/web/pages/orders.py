"""The orders list (search, customer column) and an order's page (line items,
messages sent about it, times in the shop's time zone, causes in words)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import abort, g, render_template, request
from flask_babel import format_datetime
from flask_babel import gettext as _
from sqlmodel import Session

from app.order_state import OrderState
from app.order_views import (
    customer_document,
    order_page,
    order_summary,
    readable_cause,
    search_orders,
)
from app.web.context import runtime
from app.web.pages.base import bp, signed_in
from app.web.params import ROW_ID_MAX, parse_whole_number

PAGE_SIZE = 50


def shop_time(moment: datetime | str | None) -> str:
    """A moment as the shop's clock shows it, in the page's language."""
    if not moment:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    try:
        zone = ZoneInfo(g.shop.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return format_datetime(moment.astimezone(zone).replace(tzinfo=None), "short")


@bp.app_template_filter("shop_time")
def _shop_time_filter(moment) -> str:
    return shop_time(moment)


@bp.get("/orders")
@signed_in
def orders():
    state = request.args.get("state") or None
    if state is not None and state not in OrderState.__members__.values():
        abort(400, description=_("Unknown state %(state)s", state=repr(state)[:40]))
    search = request.args.get("q", "")[:100]
    cursor = request.args.get("cursor", "")
    after = parse_whole_number(cursor, 1, ROW_ID_MAX) if cursor else None
    if cursor and after is None:
        abort(400, description=_("cursor must be the number from a “next page” link"))
    with Session(runtime().engine) as db:
        rows = search_orders(db, g.shop.id, text=search, state=state, after=after, limit=PAGE_SIZE)
    return render_template(
        "app/orders.html",
        shop=g.shop,
        orders=[
            order_summary(o) | {"customer": customer_document(c) if c else None} for o, c in rows
        ],
        states=list(OrderState),
        state=state,
        q=search,
        next_cursor=rows[-1][0].id if len(rows) == PAGE_SIZE else None,
    )


@bp.get("/orders/<shopify_id:shopify_id>")
@signed_in
def order(shopify_id: int):
    with Session(runtime().engine) as db:
        document = order_page(db, g.shop.id, shopify_id)
    if document is None:
        abort(404, description=_("No order %(id)s in this shop", id=shopify_id))
    return render_template(
        "app/order.html", shop=g.shop, order=document, readable_cause=readable_cause
    )
