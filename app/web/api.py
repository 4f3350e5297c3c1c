"""JSON API, authenticated per shop with a bearer token. Every query is scoped
by the token's shop: another shop's order is simply not found."""

from __future__ import annotations

import functools
import json

from flask import Blueprint, g, jsonify, request
from sqlalchemy import delete
from sqlmodel import Session, select

from app import inbox
from app.factory import runtime
from app.fulfillment import (
    ProviderConfigError,
    connect,
    describe_connection,
    webhook_url,
)
from app.models import DataRequest, FulfillmentConnection, InboxMessage
from app.order_state import OrderState
from app.orders import list_orders, order_document, order_summary
from app.shops import shop_for_token
from app.web.errors import error_response

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE = 200
INBOX_STATUSES = ("pending", "done", "dead", "parked")


def require_shop(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return error_response(401, "unauthorized", "send Authorization: Bearer <shop token>")
        with Session(runtime().engine) as session:
            shop = shop_for_token(session, token.strip())
        if shop is None:
            return error_response(401, "unauthorized", "the token is not valid for any shop")
        g.shop_id = shop.id
        return view(*args, **kwargs)

    return wrapper


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or not low <= int(raw) <= high:
        raise _BadArgument(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


class _BadArgument(ValueError):
    pass


@bp.errorhandler(_BadArgument)
def bad_argument(exc: _BadArgument):
    return error_response(400, "bad_request", str(exc))


@bp.get("/orders/<int:shopify_id>")
@require_shop
def get_order(shopify_id: int):
    with Session(runtime().engine) as session:
        document = order_document(session, g.shop_id, shopify_id)
    if document is None:
        return error_response(404, "not_found", f"no order {shopify_id} in this shop")
    return jsonify(document)


@bp.get("/orders")
@require_shop
def get_orders():
    state = request.args.get("state")
    if state and state not in OrderState.__members__.values():
        return error_response(
            400, "bad_request", f"state must be one of {', '.join(s.value for s in OrderState)}"
        )
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    after = _int_arg("cursor", None, 1, 2**62)
    with Session(runtime().engine) as session:
        orders = list_orders(session, g.shop_id, state=state, after=after, limit=limit)
    return jsonify(
        {
            "orders": [order_summary(o) for o in orders],
            "next_cursor": orders[-1].id if len(orders) == limit else None,
        }
    )


@bp.get("/inbox")
@require_shop
def get_inbox():
    status = request.args.get("status", "dead")
    if status not in INBOX_STATUSES:
        return error_response(
            400, "bad_request", f"status must be one of {', '.join(INBOX_STATUSES)}"
        )
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    with Session(runtime().engine) as session:
        messages = session.exec(
            select(InboxMessage)
            .where(InboxMessage.shop_id == g.shop_id, InboxMessage.status == status)
            .order_by(InboxMessage.id.desc())
            .limit(limit)
        ).all()
    return jsonify(
        {
            "messages": [
                {
                    "id": m.id,
                    "source": m.source,
                    "topic": m.topic,
                    "status": m.status,
                    "attempts": m.attempts,
                    "last_error": m.last_error,
                    "received_at": m.received_at.isoformat(),
                    "next_attempt_at": m.next_attempt_at.isoformat(),
                }
                for m in messages
            ]
        }
    )


@bp.post("/inbox/<int:message_id>/retry")
@require_shop
def retry_message(message_id: int):
    rt = runtime()
    count = inbox.retry_dead(rt.engine, g.shop_id, [message_id], rt.clock.now())
    if not count:
        return error_response(404, "not_found", f"no dead-lettered message {message_id}")
    rt.inbox_wakeup.set()
    return jsonify({"status": "queued", "id": message_id})


@bp.get("/data-requests")
@require_shop
def get_data_requests():
    with Session(runtime().engine) as session:
        requests = session.exec(
            select(DataRequest)
            .where(DataRequest.shop_id == g.shop_id)
            .order_by(DataRequest.id.desc())
        ).all()
    return jsonify(
        {
            "data_requests": [
                {
                    "id": r.id,
                    "shopify_request_id": r.shopify_request_id,
                    "customer_id": r.customer_shopify_id,
                    "requested_at": r.requested_at.isoformat(),
                    "export": json.loads(r.export),
                }
                for r in requests
            ]
        }
    )


@bp.get("/fulfillment-providers")
@require_shop
def get_providers():
    with Session(runtime().engine) as session:
        connections = session.exec(
            select(FulfillmentConnection)
            .where(FulfillmentConnection.shop_id == g.shop_id)
            .order_by(FulfillmentConnection.provider)
        ).all()
    return jsonify({"providers": [describe_connection(c) for c in connections]})


@bp.put("/fulfillment-providers/<provider>")
@require_shop
def put_provider(provider: str):
    """Connect a provider (or replace its secret): answers the webhook URL to
    give the provider, once; it is not stored in a form we can show again."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("secret", ""), str | None):
        return error_response(400, "bad_request", 'send a JSON object {"secret": "..."}')
    rt = runtime()
    with Session(rt.engine) as session:
        try:
            issued = connect(
                session, rt.secrets, g.shop_id, provider, body.get("secret"), rt.clock.now()
            )
        except ProviderConfigError as exc:
            return error_response(400, "bad_request", str(exc))
        session.commit()
        document = describe_connection(issued.connection)
    url = webhook_url(rt.settings.public_url, provider, issued.url_key)
    return jsonify(document | {"webhook_url": url}), 201


@bp.delete("/fulfillment-providers/<provider>")
@require_shop
def delete_provider(provider: str):
    with Session(runtime().engine) as session:
        deleted = session.exec(
            delete(FulfillmentConnection).where(
                FulfillmentConnection.shop_id == g.shop_id,
                FulfillmentConnection.provider == provider,
            )
        ).rowcount
        session.commit()
    if not deleted:
        return error_response(404, "not_found", f"no {provider[:40]!r} connection")
    return "", 204
