"""Webhook endpoints: verify, store once, answer at once. Processing happens in
the worker, after the response (see `app.inbox`)."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from app import inbox, metrics
from app.clock import parse_timestamp
from app.factory import runtime
from app.web.errors import error_response
from integrations import shopify

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)

_STATUS_FOR_RESULT = {
    inbox.StoreResult.STORED: 200,
    inbox.StoreResult.DUPLICATE: 200,
    inbox.StoreResult.UNKNOWN_SHOP: 404,
    inbox.StoreResult.UNINSTALLED: 410,
}


def reject(source: str, status: int, reason: str, message: str):
    metrics.WEBHOOKS_REJECTED.labels(source, reason).inc()
    return error_response(status, reason, message)


@bp.post("/shopify")
def shopify_webhook():
    rt = runtime()
    source = shopify.SOURCE
    if (request.content_length or 0) > rt.settings.webhook_max_bytes:
        return reject(source, 413, "too_large", "body exceeds the size limit")
    body = request.get_data(cache=False)
    if not shopify.verify_webhook(
        rt.settings.shopify_api_secret, body, request.headers.get("X-Shopify-Hmac-Sha256")
    ):
        return reject(
            source,
            401,
            "invalid_signature",
            "X-Shopify-Hmac-Sha256 is missing or does not match the body",
        )

    headers = request.headers
    missing = [
        name
        for name in ("X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id")
        if not headers.get(name)
    ]
    if missing:
        return reject(source, 400, "missing_header", f"missing header(s): {', '.join(missing)}")
    too_long = [
        name
        for name in ("X-Shopify-Topic", "X-Shopify-Webhook-Id", "X-Shopify-Event-Id")
        if len(headers.get(name, "")) > 128
    ]
    if too_long:
        return reject(source, 400, "bad_header", f"header(s) too long: {', '.join(too_long)}")
    topic = headers["X-Shopify-Topic"]
    domain = headers["X-Shopify-Shop-Domain"].lower()
    if topic not in shopify.SUPPORTED_TOPICS:
        return reject(source, 422, "unsupported_topic", f"topic {topic[:100]!r} is not handled")
    if not shopify.is_shop_domain(domain):
        return reject(
            source, 400, "bad_shop_domain", "X-Shopify-Shop-Domain is not *.myshopify.com"
        )
    try:
        text_body = body.decode("utf-8")
        if not isinstance(json.loads(text_body), dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return reject(source, 400, "malformed_json", f"body is not a JSON object: {exc}")
    try:
        triggered_at = parse_timestamp(headers.get("X-Shopify-Triggered-At"))
    except ValueError:
        return reject(source, 400, "bad_header", "X-Shopify-Triggered-At is not ISO-8601")

    delivery = inbox.Delivery(
        source=source,
        shop_domain=domain,
        topic=topic,
        delivery_id=headers["X-Shopify-Webhook-Id"],
        event_id=(headers.get("X-Shopify-Event-Id") or None),
        api_version=headers.get("X-Shopify-API-Version"),
        triggered_at=triggered_at,
        body=text_body,
    )
    try:
        result = inbox.store(
            rt.engine,
            delivery,
            rt.clock.now(),
            allow_uninstalled=topic in shopify.COMPLIANCE_TOPICS,
        )
    except SQLAlchemyError as exc:
        # Never 200 for what was not stored: a 5xx makes Shopify retry.
        log.error("could not store %s webhook for %s: %s", topic, domain, type(exc).__name__)
        return reject(source, 503, "storage_unavailable", "could not store the webhook; retry")

    status = _STATUS_FOR_RESULT[result]
    if status != 200:
        message = {
            inbox.StoreResult.UNKNOWN_SHOP: f"shop {domain} is not installed here",
            inbox.StoreResult.UNINSTALLED: f"shop {domain} has uninstalled the app",
        }[result]
        return reject(source, status, result.value, message)
    metrics.WEBHOOKS_RECEIVED.labels(source, topic, result.value).inc()
    rt.inbox_wakeup.set()
    return jsonify({"status": result.value})
