"""JSON API, authenticated per shop with a bearer token. Every query is scoped
by the token's shop: another shop's order is simply not found."""

from __future__ import annotations

import functools
import json
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, g, jsonify, request
from sqlalchemy import delete, func
from sqlmodel import Session, select

from app import history_import, inbox
from app.email_address import sender_problem
from app.fulfillment import (
    ProviderConfigError,
    connect,
    describe_connection,
    webhook_url,
)
from app.install import shop_for_session_token
from app.models import (
    DataRequest,
    FulfillmentConnection,
    InboxMessage,
    Notification,
    NotificationEvent,
    Order,
    Shop,
    TemplateOverride,
)
from app.order_state import OrderState
from app.orders import list_orders, order_document, order_summary
from app.shop_tokens import NoAccessToken
from app.shops import TOKEN_PREFIX, shop_for_token
from app.web.context import runtime
from app.web.errors import error_response
from integrations.shopify_admin import AdminError
from integrations.shopify_auth import OAuthError
from notifications import policy, rendering
from notifications.phone import to_e164
from notifications.rendering import locale_chain

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE = 200
LOCALE = re.compile(r"[a-z]{2,3}(-[A-Z]{2})?")
INBOX_STATUSES = ("pending", "done", "dead", "parked")


def require_shop(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return error_response(401, "unauthorized", "send Authorization: Bearer <shop token>")
        token = token.strip()
        if token.startswith(TOKEN_PREFIX):
            with Session(runtime().engine) as session:
                shop = shop_for_token(session, token)
        else:  # an embedded admin page's App Bridge session token
            shop = shop_for_session_token(runtime(), token)
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


# --- notifications ------------------------------------------------------------


@bp.get("/notifications")
@require_shop
def get_notifications():
    """What was sent to whom, when, how, and with what result."""
    order_id = _int_arg("order_id", None, 1, 2**62)
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    with Session(runtime().engine) as session:
        query = select(Notification).where(Notification.shop_id == g.shop_id)
        if order_id is not None:
            order = session.exec(
                select(Order.id).where(Order.shop_id == g.shop_id, Order.shopify_id == order_id)
            ).first()
            query = query.where(Notification.order_id == (order or -1))
        notifications = session.exec(query.order_by(Notification.id.desc()).limit(limit)).all()
        events = session.exec(
            select(NotificationEvent)
            .where(
                NotificationEvent.shop_id == g.shop_id,
                NotificationEvent.notification_id.in_([n.id for n in notifications]),
            )
            .order_by(NotificationEvent.id)
        ).all()
    history: dict[int, list] = {}
    for event in events:
        history.setdefault(event.notification_id, []).append(
            {"status": event.status, "detail": event.detail, "at": event.at.isoformat()}
        )
    return jsonify(
        {"notifications": [_notification(n, history.get(n.id, [])) for n in notifications]}
    )


def _notification(n: Notification, history: list) -> dict:
    return {
        "id": n.id,
        "kind": n.kind,
        "category": n.category,
        "channel": n.channel,
        "recipient": n.recipient,
        "locale": n.locale,
        "status": n.status,
        "status_detail": n.status_detail,
        "attempts": n.attempts,
        "provider": n.provider,
        "provider_message_id": n.provider_message_id,
        "segments": n.segments,
        "created_at": n.created_at.isoformat(),
        "sent_at": n.sent_at.isoformat() if n.sent_at else None,
        "history": history,
    }


def _template_body() -> rendering.TemplateSource:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise _BadArgument('send a JSON object {"subject": ..., "html": ..., "text": "..."}')
    for name in ("subject", "html"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise _BadArgument(f"{name} must be a string")
    return rendering.TemplateSource(body.get("subject"), body.get("html"), body["text"])


def _template_address(kind: str, channel: str, locale: str) -> None:
    if kind not in rendering.KINDS:
        raise _BadArgument(f"kind must be one of {', '.join(rendering.KINDS)}")
    if channel not in ("email", "sms"):
        raise _BadArgument("channel must be email or sms")
    if not LOCALE.fullmatch(locale):
        raise _BadArgument("locale must look like en, es or es-MX")


def _problems(problems) -> tuple:
    return jsonify({"error": {
        "code": "invalid_template",
        "message": "the template was not saved",
        "problems": [{"field": p.field, "line": p.line, "message": p.message} for p in problems],
    }}), 422  # fmt: skip


def _shop_templates(kind: str, channel: str, locales: list[str]):
    """The signed-in shop's own templates for a kind and channel in `locales`."""
    return select(TemplateOverride).where(
        TemplateOverride.shop_id == g.shop_id,
        TemplateOverride.kind == kind,
        TemplateOverride.channel == channel,
        TemplateOverride.locale.in_(locales),
    )


@bp.put("/templates/<kind>/<channel>/<locale>")
@require_shop
def put_template(kind: str, channel: str, locale: str):
    """Save the shop's own template; a broken one is refused with the line
    and the reason."""
    _template_address(kind, channel, locale)
    source = _template_body()
    problems = rendering.validate_override(kind, channel, source)
    if problems:
        return _problems(problems)
    rt = runtime()
    with Session(rt.engine) as session:
        row = session.exec(_shop_templates(kind, channel, [locale])).first() or TemplateOverride(
            shop_id=g.shop_id, kind=kind, channel=channel, locale=locale, text="",
            updated_at=rt.clock.now(),
        )  # fmt: skip
        row.subject, row.html, row.text = source.subject, source.html, source.text
        row.updated_at = rt.clock.now()
        session.add(row)
        session.commit()
    return jsonify({"status": "saved", "kind": kind, "channel": channel, "locale": locale})


@bp.delete("/templates/<kind>/<channel>/<locale>")
@require_shop
def delete_template(kind: str, channel: str, locale: str):
    with Session(runtime().engine) as session:
        row = session.exec(_shop_templates(kind, channel, [locale])).first()
        if row is not None:
            session.delete(row)
            session.commit()
    if row is None:
        return error_response(404, "not_found", "no such template of this shop")
    return "", 204


@bp.post("/templates/preview")
@require_shop
def preview_template():
    """Render a template with sample data: the shop's draft if the body has
    `text`, else what would be used now (its saved one, or ours)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_response(400, "bad_request", "send a JSON object")
    kind, channel = body.get("kind", "shipping"), body.get("channel", "email")
    locale = body.get("locale", "en")
    if not all(isinstance(v, str) for v in (kind, channel, locale)):
        return error_response(400, "bad_request", "kind, channel and locale are strings")
    _template_address(kind, channel, locale)
    source = _template_body() if "text" in body else None
    if source is not None:
        problems = rendering.validate_override(kind, channel, source)
        if problems:
            return _problems(problems)
    with Session(runtime().engine) as session:
        shop = session.get(Shop, g.shop_id)
        if source is None:
            # The one a message in this locale would use (es-MX falls back to es).
            saved = session.exec(
                _shop_templates(kind, channel, locale_chain(locale)).order_by(
                    func.length(TemplateOverride.locale).desc()
                )
            ).first()
            if saved:
                source = rendering.TemplateSource(saved.subject, saved.html, saved.text)
    context = rendering.sample_context(kind) | {"shop_name": shop.name}
    rendered = rendering.render(
        kind, channel, locale, context, shop_locale=shop.locale, override=source
    )
    return jsonify({"subject": rendered.subject, "html": rendered.html, "text": rendered.text})


@bp.get("/settings/notifications")
@require_shop
def get_notification_settings():
    with Session(runtime().engine) as session:
        shop = session.get(Shop, g.shop_id)
    return jsonify(_notification_settings(shop))


@bp.patch("/settings/notifications")
@require_shop
def patch_notification_settings():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_response(400, "bad_request", "send a JSON object")
    unknown = set(body) - set(_SETTINGS)
    if unknown:
        return error_response(
            400, "bad_request", f"unknown setting(s): {', '.join(sorted(unknown))}"
        )
    for name, value in body.items():
        problem = _SETTINGS[name](value)
        if problem:
            return error_response(400, "bad_request", f"{name}: {problem}")
    with Session(runtime().engine) as session:
        shop = session.get(Shop, g.shop_id)
        for name, value in body.items():
            setattr(shop, name, value)
        session.add(shop)
        session.commit()
        return jsonify(_notification_settings(shop))


def _clock_problem(value) -> str | None:
    try:
        policy.parse_clock(value)
    except (TypeError, ValueError, AttributeError):
        return "a time as HH:MM"
    return None


def _timezone_problem(value) -> str | None:
    if not isinstance(value, str):
        return "an IANA time zone such as Europe/Madrid"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r}"
    return None


def _email_problem(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 320:
        return "an email address such as help@shop.com"
    problem = sender_problem(value)
    return f"an email address such as help@shop.com ({problem})" if problem else None


def _sms_sender_problem(value) -> str | None:
    ok = value is None or (
        isinstance(value, str) and (value.startswith("MG") or to_e164(value, None) == value)
    )
    return None if ok else "an E.164 number or a messaging service SID"


def _cap_problem(value) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 50
    return None if ok else "a whole number from 1 to 50"


def _locale_problem(value) -> str | None:
    ok = isinstance(value, str) and LOCALE.fullmatch(value)
    return None if ok else "a locale such as en or es-MX"


_SETTINGS = {
    "email_from": _email_problem,
    "sms_from": _sms_sender_problem,
    "quiet_hours_start": _clock_problem,
    "quiet_hours_end": _clock_problem,
    "daily_message_cap": _cap_problem,
    "timezone": _timezone_problem,
    "locale": _locale_problem,
}


def _notification_settings(shop: Shop) -> dict:
    return {name: getattr(shop, name) for name in _SETTINGS}


# --- history import -------------------------------------------------------------


@bp.get("/imports")
@require_shop
def get_import():
    """How the import of the shop's history is going."""
    with Session(runtime().engine) as session:
        run = history_import.latest(session, g.shop_id)
    if run is None:
        return error_response(404, "not_found", "no import has been started for this shop")
    return jsonify(history_import.describe(run))


@bp.post("/imports")
@require_shop
def post_import():
    """Start importing the shop's history (or answer the one under way)."""
    rt = runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        try:
            run = history_import.begin(session, rt, session.get(Shop, g.shop_id))
        except (AdminError, NoAccessToken, OAuthError) as exc:
            return error_response(502, "shopify_unavailable", f"cannot start the import: {exc}")
        session.commit()
    return jsonify(history_import.describe(run)), 202
