"""Orders: their state, shipments and timeline."""

from __future__ import annotations

from sqlmodel import Session

from app.order_views import list_orders, order_document, order_summary
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.schemas import OrderDocument, OrderList, OrdersQuery


@api.route("GET", "/orders/<shopify_id:order_id>", response=OrderDocument, errors=(404,))
def get_order(order_id: int):
    """One order with its customer, shipments and timeline."""
    with Session(runtime().engine) as session:
        document = order_document(session, shop_id(), order_id)
    if document is None:
        return error_response(404, "not_found", f"no order {order_id} in this shop")
    return OrderDocument.model_validate(document)


@api.route("GET", "/orders", query=OrdersQuery, response=OrderList)
def get_orders(query: OrdersQuery):
    """The shop's orders, a page at a time, optionally in one state."""
    with Session(runtime().engine) as session:
        orders = list_orders(
            session, shop_id(), state=query.state, after=query.cursor, limit=query.limit
        )
    return OrderList(
        orders=[order_summary(o) for o in orders],
        next_cursor=orders[-1].id if len(orders) == query.limit else None,
    )
