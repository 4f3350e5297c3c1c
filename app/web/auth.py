"""Installing from a link (Shopify's authorization code grant, non-embedded):
`/auth/install` checks the signed link and sends the merchant to Shopify's
consent screen; `/auth/callback` checks the answer and exchanges the code for
an expiring offline token.

Every check happens before any redirect or outbound request: the shop must be
`<name>.myshopify.com` (no look-alikes), the query HMAC must verify (hex
HMAC-SHA256 with the client secret, compared in constant time), the timestamp
must be fresh, and the callback's `state` must be the nonce we set in the
signed session cookie for that shop, and one issued, unexpired and unused in
`oauth_states` (a copy of the cookie cannot be replayed with another code).
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, abort, redirect, request, session, url_for
from sqlmodel import Session

from app import oauth_states
from app.install import after_install, record_install
from app.web.context import runtime
from app.web.session import start_session
from integrations.shopify import is_shop_domain
from integrations.shopify_auth import OAuthError, is_fresh, verify_query_hmac

bp = Blueprint("auth", __name__, url_prefix="/auth")
log = logging.getLogger(__name__)


def _checked_shop() -> str:
    """The shop of a signed, fresh request from Shopify; aborts otherwise."""
    rt = runtime()
    shop = request.args.get("shop", "").strip().lower()
    if not is_shop_domain(shop):
        abort(400, description="shop must be a <name>.myshopify.com domain")
    if not verify_query_hmac(request.args.to_dict(flat=False), rt.settings.shopify_api_secret):
        abort(401, description="the link's signature (hmac) does not verify")
    if not is_fresh(request.args.get("timestamp", ""), rt.clock.now()):
        abort(401, description="the link has expired; open the app again from Shopify")
    return shop


@bp.get("/install")
def install():
    shop = _checked_shop()
    rt = runtime()
    with Session(rt.engine) as db:
        nonce = oauth_states.issue(db, shop, rt.clock.now())
        db.commit()
    session["oauth"] = {"shop": shop, "state": nonce}
    scopes = [s.strip() for s in rt.settings.shopify_scopes.split(",") if s.strip()]
    redirect_uri = f"{rt.settings.public_url}{url_for('auth.callback')}"
    return redirect(rt.oauth.authorize_url(shop, scopes, redirect_uri, nonce))


@bp.get("/callback")
def callback():
    shop = _checked_shop()
    expected = session.pop("oauth", None) or {}
    state = request.args.get("state", "")
    if expected.get("shop") != shop or not hmac.compare_digest(
        state.encode(), str(expected.get("state", "")).encode()
    ):
        abort(403, description="this sign-in did not start here; install the app again")
    code = request.args.get("code", "")
    if not code:
        abort(400, description="Shopify sent no authorization code")
    rt = runtime()
    with Session(rt.engine) as db:
        fresh = oauth_states.consume(db, state, shop, rt.clock.now())
        db.commit()
    if not fresh:
        abort(403, description="this sign-in was used or has expired; install the app again")
    try:
        tokens = rt.oauth.exchange_code(shop, code)
    except OAuthError as exc:
        log.error("install of %s: code exchange failed: %s", shop, exc.reason)
        abort(502, description="Shopify refused the installation; please try again")
    with Session(rt.engine) as db:
        installed = record_install(db, rt, shop, tokens)
        after_install(db, rt, installed)
        db.commit()
        start_session(installed, "install")
    return redirect(url_for("pages.home"))
