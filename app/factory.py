"""The Flask app factory. Creating an app connects to nothing and starts
nothing: migrations are `careloop db upgrade`, the worker and the scheduler
are their own commands (or threads of `careloop run`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import Flask, current_app, redirect, url_for
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import ROOT, Settings
from app.crypto import SecretBox
from app.db import make_engine
from app.web.params import CONVERTERS
from app.web.session import CookieSessionInterface
from integrations.shopify_auth import OAuthClient


@dataclass
class Runtime:
    """What every request, job and command needs: settings, database, time."""

    settings: Settings
    engine: Engine
    clock: Clock
    secrets: SecretBox
    oauth: OAuthClient  # Shopify's token endpoint (code grant, token exchange, refresh)
    # Set after a webhook is stored so that an in-process worker (`careloop
    # run`) picks it up at once instead of at its next poll.
    inbox_wakeup: threading.Event = field(default_factory=threading.Event)


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, clock: Clock | None = None
) -> Flask:
    settings = settings or Settings.from_env()
    clock = clock or Clock()
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["MAX_CONTENT_LENGTH"] = settings.webhook_max_bytes
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.is_production
    app.json.sort_keys = False
    app.url_map.converters.update(CONVERTERS)
    app.session_interface = CookieSessionInterface()
    app.extensions["careloop"] = Runtime(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        clock=clock,
        secrets=SecretBox(settings.encryption_keys),
        oauth=OAuthClient(
            settings.shopify_api_key,
            settings.shopify_api_secret,
            timeout_seconds=settings.provider_timeout_seconds,
            base_url_for=lambda shop: settings.shopify_url_template.format(shop=shop),
            now=clock.now,
        ),
    )

    from app.web import auth, errors, health, messaging, pages, webhooks
    from app.web.api import routes as api

    errors.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(messaging.bp)
    app.register_blueprint(auth.bp)
    app.add_url_rule("/", "index", lambda: redirect(url_for("pages.orders")))
    return app


def runtime() -> Runtime:
    return current_app.extensions["careloop"]
