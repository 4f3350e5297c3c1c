"""The merchant pages' signed-cookie session: opened only when there is a
cookie, and holding what signed it in (`app.sign_ins`), for the pages' own
sign-in and the install's alike.

Flask opens the session of every request: it parses the Cookie header (by
walking every header) and builds an itsdangerous signer. Webhooks and API
calls never carry our cookie, and under the webhook bench that work was 8% of
a web worker's Python time. A request without a cookie gets a new, empty
session at no cost; writing to it still sets the cookie, since saving is
Flask's own.
"""

from __future__ import annotations

from flask import Flask, Request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlmodel import Session

from app import sign_ins
from app.models import Shop
from app.sign_ins import SignIn
from app.web.context import runtime


class CookieSessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)


def start_session(shop: Shop, via: str, **credential) -> None:
    """Open a standalone session for `shop`, naming what signed it in."""
    session.clear()
    since = runtime().clock.now().timestamp()
    session["sign_in"] = SignIn(shop.id, via, since, **credential).to_cookie()


def session_shop() -> Shop | None:
    """The shop of the standalone session, while what it was signed in with
    still works."""
    sign_in = SignIn.from_cookie(session.get("sign_in"))
    if sign_in is None:
        return None
    rt = runtime()
    with Session(rt.engine) as db:
        return sign_ins.holds(db, sign_in, rt.clock.now())
