"""The Flask app factory. It only wires Flask around a runtime built by
`app.runtime`: creating an app connects to nothing and starts nothing;
migrations are `careloop db upgrade`, and the worker and the scheduler are
their own commands (or threads of `careloop run`) that never create an app."""

from __future__ import annotations

from flask import Flask, redirect, url_for
from flask_babel import Babel

from app.config import ROOT
from app.logs import with_request_context
from app.runtime import Runtime
from app.web import auth, errors, health, messaging, pages, survey, webhooks
from app.web.api import routes as api
from app.web.pages.base import select_locale
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

    # Page strings go through gettext (`_()` in templates); the catalogs are
    # app/translations (en, es, ru), the language is chosen per request.
    Babel(app, default_locale="en", default_timezone="UTC", locale_selector=select_locale)
    errors.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(messaging.bp)
    app.register_blueprint(survey.bp)
    app.register_blueprint(auth.bp)
    app.add_url_rule("/", "index", lambda: redirect(url_for("pages.home")))
    app.wsgi_app = with_request_context(app.wsgi_app, is_shop_domain)
    return app
