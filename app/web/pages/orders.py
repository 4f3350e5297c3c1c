"""The orders list and an order's page."""

from __future__ import annotations

from flask import abort, g, render_template, request
from sqlmodel import Session

from app.order_state import OrderState
from app.order_views import list_orders, order_document, order_summary
from app.web.context import runtime
from app.web.pages.base import bp, signed_in
from app.web.params import ROW_ID_MAX, parse_whole_number

PAGE_SIZE = 50


@bp.get("/")
@bp.get("/orders")
@signed_in
def orders():
    state = request.args.get("state") or None
    if state is not None and state not in OrderState.__members__.values():
        abort(400, description=f"unknown state {state!r}")
    cursor = request.args.get("cursor", "")
    after = parse_whole_number(cursor, 1, ROW_ID_MAX) if cursor else None
    if cursor and after is None:
        abort(400, description="cursor must be the number from a “next page” link")
    with Session(runtime().engine) as db:
        rows = list_orders(db, g.shop.id, state=state, after=after, limit=PAGE_SIZE)
    return render_template(
        "app/orders.html",
        shop=g.shop,
        orders=[order_summary(o) for o in rows],
        states=list(OrderState),
        state=state,
        next_cursor=rows[-1].id if len(rows) == PAGE_SIZE else None,
    )


@bp.get("/orders/<shopify_id:shopify_id>")
@signed_in
def order(shopify_id: int):
    with Session(runtime().engine) as db:
        document = order_document(db, g.shop.id, shopify_id)
    if document is None:
        abort(404, description=f"no order {shopify_id} in this shop")
    return render_template("app/order.html", shop=g.shop, order=document)
