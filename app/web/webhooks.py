"""Webhook endpoints: verify, store once, answer at once. Processing happens in
the worker, after the response (see `app.inbox`). Every refusal stores
nothing; a delivery that could not be stored is answered 503 so that the
sender retries."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import orjson
from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select
from werkzeug.exceptions import RequestEntityTooLarge

from app import inbox, metrics, providers
from app.clock import parse_timestamp
from app.crypto import InvalidToken
from app.events import PayloadError, UnsupportedTopic
from app.models import Shop
from app.web.body import read_body
from app.web.context import runtime
from app.web.errors import error_response
from integrations import shopify

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _raw_body() -> bytes:
    try:
        return read_body(runtime().settings.webhook_max_bytes, cache=False)
    except RequestEntityTooLarge:
        raise Refused(413, "too_large", "body exceeds the size limit") from None


def _json_object(body: bytes) -> tuple[str, dict]:
    # orjson: the same strict RFC 8259 parsing, several times faster than the
    # standard library on the hot path (bodies of 10 KB and more).
    try:
        text = body.decode("utf-8")
        payload = orjson.loads(body)
    except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise Refused(400, "malformed_json", f"body is not a JSON object: {exc}") from None
    if not isinstance(payload, dict):
        raise Refused(400, "malformed_json", "body is not a JSON object")
    return text, payload


# Answered to every accepted delivery; written once rather than per request.
_ANSWERS = {
    result: orjson.dumps({"status": result.value}) + b"\n"
    for result in (inbox.StoreResult.STORED, inbox.StoreResult.DUPLICATE)
}


def _store(delivery: inbox.Delivery, *, allow_uninstalled: bool = False):
    rt = runtime()
    try:
        result = inbox.store(
            rt.engine, delivery, rt.clock.now(), allow_uninstalled=allow_uninstalled
        )
    except SQLAlchemyError as exc:
        log.error("could not store a %s %s webhook: %s", delivery.source, delivery.topic,
                  type(exc).__name__)  # fmt: skip
        raise Refused(503, "storage_unavailable", "could not store the webhook; retry") from None
    if result == inbox.StoreResult.UNKNOWN_SHOP:
        raise Refused(404, result.value, f"shop {delivery.shop} is not installed here")
    if result == inbox.StoreResult.UNINSTALLED:
        raise Refused(410, result.value, f"shop {delivery.shop} has uninstalled the app")
    metrics.WEBHOOKS_RECEIVED.labels(delivery.source, delivery.topic, result.value).inc()
    # Set takes a lock even when the flag is up; the worker clears it before it
    # drains the inbox, so a flag still up already covers this delivery.
    if not rt.inbox_wakeup.is_set():
        rt.inbox_wakeup.set()
    return Response(_ANSWERS[result], mimetype="application/json")


def _answer(source: str, receive):
    try:
        return receive()
    except Refused as refused:
        metrics.WEBHOOKS_REJECTED.labels(source, refused.reason).inc()
        return error_response(refused.status, refused.reason, refused.message)


# The columns they are stored in.
_HEADER_LIMITS = {
    "X-Shopify-Topic": 128,
    "X-Shopify-Webhook-Id": 128,
    "X-Shopify-Event-Id": 128,
    "X-Shopify-API-Version": 32,
}


@bp.post("/shopify")
def shopify_webhook():
    return _answer(shopify.SOURCE, _receive_shopify)


_SHOPIFY_HEADERS = (
    "X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id",
    "X-Shopify-Event-Id", "X-Shopify-API-Version", "X-Shopify-Triggered-At",
)  # fmt: skip


def _receive_shopify():
    body = _raw_body()
    headers = {name: request.headers.get(name, "") for name in _SHOPIFY_HEADERS}
    secret = runtime().settings.shopify_api_secret
    if not shopify.verify_webhook(secret, body, headers["X-Shopify-Hmac-Sha256"]):
        raise Refused(
            401, "invalid_signature", "X-Shopify-Hmac-Sha256 is missing or does not match the body"
        )
    required = ("X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id")
    missing = [name for name in required if not headers[name]]
    if missing:
        raise Refused(400, "missing_header", f"missing header(s): {', '.join(missing)}")
    too_long = [name for name, limit in _HEADER_LIMITS.items() if len(headers[name]) > limit]
    if too_long:
        raise Refused(400, "bad_header", f"header(s) too long: {', '.join(too_long)}")
    topic = headers["X-Shopify-Topic"]
    domain = headers["X-Shopify-Shop-Domain"].lower()
    if topic not in shopify.SUPPORTED_TOPICS:
        raise Refused(422, "unsupported_topic", f"topic {topic[:100]!r} is not handled")
    if not shopify.is_shop_domain(domain):
        raise Refused(400, "bad_shop_domain", "X-Shopify-Shop-Domain is not *.myshopify.com")
    text, payload = _json_object(body)
    mismatch = shopify.header_mismatch(topic, domain, payload)
    if mismatch:
        raise Refused(400, "header_mismatch", mismatch)
    try:
        triggered_at = parse_timestamp(headers["X-Shopify-Triggered-At"])
    except ValueError:
        raise Refused(400, "bad_header", "X-Shopify-Triggered-At is not ISO-8601") from None
    if triggered_at is not None and not _within_retry_window(triggered_at):
        raise Refused(
            400, "stale_delivery", "X-Shopify-Triggered-At is outside Shopify's retry window"
        )
    if topic == "shop/redact" and _still_installed(domain):
        raise Refused(409, "shop_installed", f"shop {domain} has not uninstalled the app")
    delivery = inbox.Delivery(
        source=shopify.SOURCE,
        shop=domain,
        topic=topic,
        delivery_id=headers["X-Shopify-Webhook-Id"],
        event_id=headers["X-Shopify-Event-Id"] or None,
        api_version=headers["X-Shopify-API-Version"] or None,
        triggered_at=triggered_at,
        body=text,
    )
    return _store(delivery, allow_uninstalled=topic in shopify.COMPLIANCE_TOPICS)


# Shopify retries a failed delivery 8 times over 4 hours, with the payload of
# trigger time (changelog 2024-09-10, "Updates to webhook retry mechanism";
# before that, 19 times over 48 hours). A delivery triggered more than 48
# hours ago is far outside either schedule: a replay. Clocks drift, so a
# trigger time a little ahead of ours is fine.
RETRY_WINDOW = timedelta(hours=48)
CLOCK_SKEW = timedelta(minutes=5)


def _within_retry_window(triggered_at: datetime) -> bool:
    now = runtime().clock.now()
    return now - RETRY_WINDOW <= triggered_at <= now + CLOCK_SKEW


def _still_installed(domain: str) -> bool:
    """Whether the shop has the app installed. Shopify sends shop/redact 48
    hours after an uninstall: before that, such a request is not Shopify's."""
    try:
        with Session(runtime().engine) as session:
            shop = session.exec(select(Shop).where(Shop.domain == domain)).first()
    except SQLAlchemyError:
        raise Refused(503, "storage_unavailable", "could not check the shop; retry") from None
    return shop is not None and shop.uninstalled_at is None


@bp.post("/<any(fulfillment, helpdesk):kind>/<provider>")
def provider_webhook(kind: str, provider: str):
    """One route shape for every kind of provider (`app.providers`)."""
    module = providers.provider(kind, provider)
    if module is None:
        return error_response(404, "unknown_provider", f"no {kind} provider {provider[:40]!r}")
    return _answer(provider, lambda: _receive_from_provider(kind, module))


def _receive_from_provider(kind: str, module: providers.WebhookProvider):
    """Any provider: the URL key names the connection (and so the shop), the
    provider module checks the signature and names the topic and delivery."""
    provider = module.SOURCE
    rt = runtime()
    body = _raw_body()
    with Session(rt.engine) as session:
        connection = providers.connection_for_key(
            session, kind, provider, request.args.get("key", "")
        )
    if connection is None:
        raise Refused(401, "unknown_connection", "the key in the URL is not a connection of ours")
    try:
        secret = (
            rt.secrets.decrypt(connection.secret_encrypted) if connection.secret_encrypted else None
        )
    except InvalidToken:
        log.error("the %s secret of shop %s opens with none of the configured keys",
                  provider, connection.shop_id)  # fmt: skip
        raise Refused(503, "secret_unreadable", "cannot check the signature now; retry") from None
    if not module.authenticate(secret, request.headers, body):
        raise Refused(401, "invalid_signature", "the signature is missing, stale or wrong")
    text, payload = _json_object(body)
    try:
        described = module.describe(request.headers, body, payload)
    except UnsupportedTopic as exc:
        raise Refused(422, "unsupported_topic", str(exc)) from None
    except PayloadError as exc:
        raise Refused(400, "bad_payload", str(exc)) from None
    if len(described.delivery_id) > 128 or len(described.topic) > 128:
        raise Refused(400, "bad_header", "delivery id or topic longer than 128 characters")
    delivery = inbox.Delivery(
        source=provider,
        shop=connection.shop_id,
        topic=described.topic,
        delivery_id=described.delivery_id,
        event_id=None,
        api_version=None,
        triggered_at=described.triggered_at,
        body=text,
    )
    return _store(delivery)
