"""The merchant pages' signed-cookie session, opened only when there is a cookie.

Flask opens the session of every request: it parses the Cookie header (by
walking every header) and builds an itsdangerous signer. Webhooks and API
calls never carry our cookie, and under the webhook bench that work was 8% of
a web worker's Python time. A request without a cookie gets a new, empty
session at no cost; writing to it still sets the cookie, since saving is
Flask's own.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class CookieSessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)
