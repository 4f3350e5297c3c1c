"""The Flask app factory. It only wires Flask around a runtime built by
`app.runtime`: creating an app connects to nothing and starts nothing;
migrations are `careloop db upgrade`, and the worker and the scheduler are
their own commands (or threads of `careloop run`) that never create an app."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, redirect, request, url_for

from app.config import ROOT
from app.logs import log_context
from app.runtime import Runtime
from app.web import auth, errors, health, messaging, pages, webhooks
from app.web.api import routes as api
from app.web.params import CONVERTERS
from app.web.session import CookieSessionInterface
from integrations.shopify import is_shop_domain

__all__ = ["Runtime", "create_app"]


def create_app(rt: Runtime) -> Flask:
    settings = rt.settings
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["MAX_CONTENT_LENGTH"] = settings.webhook_max_bytes
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.is_production
    app.json.sort_keys = False
    app.url_map.converters.update(CONVERTERS)
    app.session_interface = CookieSessionInterface()
    app.extensions["careloop"] = rt

    errors.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(messaging.bp)
    app.register_blueprint(auth.bp)
    app.add_url_rule("/", "index", lambda: redirect(url_for("pages.orders")))
    app.before_request(_open_log_context)
    app.teardown_request(_close_log_context)
    return app


# A caller's X-Request-Id is kept when it is a plain token (it goes into logs).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _open_log_context() -> None:
    """The request's log lines carry its id and, for a Shopify webhook, the
    shop and the webhook id (Shopify's X-Shopify-Shop-Domain and
    X-Shopify-Webhook-Id headers)."""
    request_id = request.headers.get("X-Request-Id", "")
    webhook_id = request.headers.get("X-Shopify-Webhook-Id", "")
    shop = request.headers.get("X-Shopify-Shop-Domain", "")
    g.log_context = log_context(
        request_id=request_id if _REQUEST_ID.fullmatch(request_id) else uuid.uuid4().hex,
        webhook_id=webhook_id if _REQUEST_ID.fullmatch(webhook_id) else None,
        shop=shop if is_shop_domain(shop) else None,
    )
    g.log_context.__enter__()


def _close_log_context(_error: BaseException | None) -> None:
    context = g.pop("log_context", None)
    if context is not None:
        context.__exit__(None, None, None)
