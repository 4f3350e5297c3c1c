"""The merchant pages' blueprint, sign-in and forms' CSRF check: what every
page module (`app.web.pages.*`) shares.

Sign-in is by the shop's API token, kept in Flask's signed session cookie as
the shop id (HttpOnly, SameSite=Lax). Shopify session tokens for the embedded
admin come with the install issue.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from sqlmodel import Session

from app.install import shop_for_session_token
from app.models import Shop
from app.shops import shop_for_token
from app.web.context import runtime

bp = Blueprint("pages", __name__, url_prefix="/app")


def signed_in(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        id_token = request.args.get("id_token")
        if id_token:  # the Shopify admin opening the embedded app
            shop = shop_for_session_token(runtime(), id_token)
            if shop is None:
                abort(401, description="Shopify's session token did not verify")
            session.clear()
            session["shop_id"] = shop.id
        shop_id = session.get("shop_id")
        with Session(runtime().engine) as db:
            shop = db.get(Shop, shop_id) if shop_id else None
        if shop is None or shop.uninstalled_at is not None:
            session.clear()
            return redirect(url_for("pages.login", next=request.path))
        g.shop = shop
        return view(*args, **kwargs)

    return wrapper


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    """The form's token must equal the one in our session cookie. A request
    without that cookie (a cross-site form: SameSite=Lax keeps it out of
    cross-site POSTs) has no token to match, so it never matches, even when
    the form sends none either."""
    sent, expected = request.form.get("csrf", ""), session.get("csrf", "")
    if not (sent and expected and hmac.compare_digest(sent.encode(), expected.encode())):
        abort(400, description="the form expired; reload the page and try again")


@bp.app_context_processor
def inject_csrf():
    return {"csrf_token": csrf_token}


@bp.get("/login")
def login():
    return render_template("app/login.html", error=None, next=request.args.get("next", ""))


@bp.post("/login")
def login_submit():
    check_csrf()
    token = request.form.get("token", "").strip()
    with Session(runtime().engine) as db:
        shop = shop_for_token(db, token) if token else None
    if shop is None:
        return render_template(
            "app/login.html", error="That token is not valid for any shop.", next=""
        ), 401
    session.clear()
    session["shop_id"] = shop.id
    target = request.form.get("next", "")
    if not _LOCAL_PAGE.fullmatch(target):
        target = url_for("pages.orders")
    return redirect(target)


# Where a sign-in may go on to: one of our pages (a path on this host, never an
# open redirect), in printable ASCII only: no CR/LF, which a Location header
# cannot carry (Werkzeug refuses to send it, and the request ended in a 500).
_LOCAL_PAGE = re.compile(r"/app/[!-~]*")


@bp.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("pages.login"))
