"""The merchant pages' blueprint, sign-in and forms' CSRF check: what every
page module (`app.web.pages.*`) shares. Two modes, one decorator:

- **Embedded** (opened inside the Shopify admin, in an iframe): no cookies at
  all, since the admin's iframe blocks third-party cookies. Every request
  carries an App Bridge session token (a JWT that lives one minute): a
  document request as `?id_token=`, a form as a hidden `id_token` field that
  `static/app.js` fills with a fresh token just before it submits, a fetch in
  `Authorization: Bearer`. A document request without a valid one is sent to
  the bounce page, which asks App Bridge for a fresh token (`shopify.idToken()`)
  and comes back with it; a form or fetch without one is answered 401 with
  `X-Shopify-Retry-Invalid-Session-Request: 1`. The token proves the request
  comes from the admin (only App Bridge in the shop's admin can mint one with
  our client secret), so it is the forms' CSRF protection too. Source:
  shopify.dev "Set up embedded app authorization" (id_token on document
  requests, the `session-token-bounce` page with `shopify-reload`, the retry
  header for fetches) and "About session tokens" (one-minute lifetime; fetch
  a fresh one for every request).
- **Standalone** (the support team outside the admin): sign-in with the shop's
  API token or a signed sign-in link, kept in Flask's signed session cookie
  (HttpOnly, SameSite=Lax); forms carry a CSRF token matched to the cookie.

Page modules use `@signed_in` on every view and call `check_csrf()` first in
every POST view; links built with `url_for('pages.…')` carry the embedded
parameters by themselves (`url_defaults` below), and templates extend
`app/base.html`, whose script adds the session token to links and forms.

Every page answers with a Content-Security-Policy: `frame-ancestors` names the
shop's own admin and admin.shopify.com when embedded and `'none'` otherwise
(shopify.dev "Set up iframe protection"); scripts come from us, from App
Bridge's CDN address, or carry the page's nonce (`csp_nonce()`).
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlmodel import Session

from app import sign_in_links
from app.install import shop_for_session_token
from app.shops import TOKEN_PREFIX, token_and_shop
from app.web.context import runtime
from app.web.session import session_shop, start_session
from integrations.shopify import is_shop_domain

bp = Blueprint("pages", __name__, url_prefix="/app", static_folder="../static")

APP_BRIDGE = "https://cdn.shopify.com/shopifycloud/app-bridge.js"
ADMIN = "https://admin.shopify.com"
# The admin's parameters that an embedded page passes on to the next one.
EMBEDDED_PARAMS = ("embedded", "shop", "host", "locale")
LANGUAGES = ("en", "es", "ru")
RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"


def _session_token() -> str | None:
    """The App Bridge session token the request carries, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip() and not token.startswith(TOKEN_PREFIX):
        return token.strip()
    return request.form.get("id_token") or request.args.get("id_token") or None


def _wants_embedded() -> bool:
    return request.args.get("embedded") == "1" or _session_token() is not None


def signed_in(view):
    """Run `view` with `g.shop` set (and `g.embedded`), or send the visitor to
    sign in: to the bounce page when embedded, to the login page otherwise."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.embedded = False
        if _wants_embedded():
            token = _session_token()
            shop = shop_for_session_token(runtime(), token) if token else None
            if shop is None:
                return _fresh_token_needed()
            g.shop, g.shop_id, g.embedded = shop, shop.id, True
            return view(*args, **kwargs)
        shop = session_shop()
        if shop is None:
            session.clear()
            return redirect(url_for("pages.login", next=request.path))
        g.shop, g.shop_id = shop, shop.id
        return view(*args, **kwargs)

    return wrapper


def _fresh_token_needed():
    """A document request goes through the bounce page and comes back with a
    fresh token; anything else (a form, a fetch) is told to retry with one:
    its body cannot survive a redirect."""
    shop = request.args.get("shop", "")
    if request.method == "GET" and is_shop_domain(shop):
        params = {k: v for k, v in request.args.items() if k != "id_token"}
        reload = f"{request.path}?{urlencode(params)}"
        return redirect(url_for("pages.bounce", shop=shop, **{"shopify-reload": reload}))
    response = Response(
        _("Your Shopify session expired. Go back and submit again: your entries are kept."),
        status=401,
        mimetype="text/plain",
    )
    response.headers[RETRY_HEADER] = "1"
    return response


@bp.get("/session-token-bounce")
def bounce():
    """A page with App Bridge only: `static/app.js` asks it for a fresh
    session token and goes back to `shopify-reload` with it."""
    shop = request.args.get("shop", "")
    target = request.args.get("shopify-reload", "")
    if not is_shop_domain(shop) or not _LOCAL_PAGE.fullmatch(target):
        abort(400, description=_("This page is only reached from the Shopify admin."))
    g.embedded, g.frame_shop = True, shop
    return render_template("app/bounce.html", reload=target)


@bp.url_defaults
def _keep_embedded(endpoint: str, values: dict) -> None:
    """Links and form actions inside the embedded app keep the admin's
    parameters, so the next request knows it is embedded (and bounces for a
    token if the script could not add one). A route of ours must therefore
    not name a URL variable `embedded`, `shop`, `host` or `locale`."""
    if g.get("embedded") and "filename" not in values:
        for name in EMBEDDED_PARAMS:
            value = request.args.get(name)
            if name == "embedded":
                value = "1"
            elif name == "shop":
                value = g.shop.domain if "shop" in g else value
            if value:
                values.setdefault(name, value)


def csrf_token() -> str:
    """The standalone forms' CSRF token ("" when embedded: nothing may set a
    cookie there, and the session token does that job)."""
    if g.get("embedded"):
        return ""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    """Refuse a form or fetch that may come from another site.

    Embedded: `signed_in` already verified the session token the request
    carries, and no other site can have one. Standalone: the form's `csrf`
    field (or a fetch's `X-CSRF-Token` header) must equal the token in our
    session cookie. A request without that cookie (a cross-site form:
    SameSite=Lax keeps it out of cross-site POSTs) has no token to match, so
    it never matches, even when the form sends none either."""
    if g.get("embedded"):
        return
    sent = request.form.get("csrf") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf", "")
    if not (sent and expected and hmac.compare_digest(sent.encode(), expected.encode())):
        abort(400, description=_("The form expired; reload the page and try again."))


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


@bp.app_context_processor
def inject_page_helpers():
    return {
        "csrf_token": csrf_token,
        "csp_nonce": csp_nonce,
        "embedded": bool(g.get("embedded")),
        "client_id": runtime().settings.shopify_api_key,
        "app_bridge_url": APP_BRIDGE,
        "current_locale": lambda: str(get_locale() or "en"),
        "shop": g.get("shop"),
    }


@bp.after_request
def _security_headers(response: Response) -> Response:
    """Every page: who may frame it, and where its scripts may come from."""
    shop = g.get("frame_shop") or (g.shop.domain if g.get("embedded") and "shop" in g else None)
    frame_ancestors = f"https://{shop} {ADMIN}" if shop else "'none'"
    response.headers["Content-Security-Policy"] = "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{csp_nonce()}' {APP_BRIDGE}",
        "style-src 'self' 'unsafe-inline'",  # templates' style attributes; no script runs from CSS
        "img-src 'self' data:",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ])  # fmt: skip
    response.headers["Referrer-Policy"] = "same-origin"  # never leak an id_token in Referer
    response.headers["X-Content-Type-Options"] = "nosniff"
    if g.get("embedded"):
        response.headers["Cache-Control"] = "no-store"
    return response


def select_locale() -> str:
    """The interface language: the admin's `locale` when embedded (Shopify
    passes the staff member's language on every embedded load), otherwise the
    signed-in shop's locale, then the browser's Accept-Language."""
    if g.get("embedded") or request.args.get("embedded") == "1":
        chosen = request.args.get("locale", "")[:2].lower()
        if chosen in LANGUAGES:
            return chosen
    shop = g.get("shop")
    if shop is not None and not g.get("embedded") and shop.locale[:2] in LANGUAGES:
        return shop.locale[:2]
    return request.accept_languages.best_match(LANGUAGES) or "en"


@bp.get("/login")
def login():
    return render_template("app/login.html", error=None, next=request.args.get("next", ""))


@bp.post("/login")
def login_submit():
    check_csrf()
    token = request.form.get("token", "").strip()
    with Session(runtime().engine) as db:
        found = token_and_shop(db, token) if token else None
    if found is None:
        return render_template(
            "app/login.html", error=_("That token is not valid for any shop."), next=""
        ), 401
    token_id, shop = found
    start_session(shop, "token", token_id=token_id)
    return _go_on(request.form.get("next", ""))


def _go_on(target: str):
    if not _LOCAL_PAGE.fullmatch(target):
        target = url_for("pages.home")
    return redirect(target)


@bp.get("/sign-in/<link>")
def sign_in_link(link: str):
    """A sign-in link a merchant sent to their support team: a page with one
    button, so that opening a link (or a mail scanner fetching it) signs no
    one in by itself."""
    found = _open_link(link)
    return render_template("app/sign_in_link.html", link_shop=found.shop, link=link)


@bp.post("/sign-in/<link>")
def sign_in_link_submit(link: str):
    check_csrf()
    found = _open_link(link)
    start_session(found.shop, "link", link_issued=found.issued, link_expires=found.expires)
    return _go_on("")


def _open_link(link: str) -> sign_in_links.Link:
    rt = runtime()
    with Session(rt.engine) as db:
        found = sign_in_links.open_link(db, rt.settings.secret_key, link, rt.clock.now())
    if found is None:
        abort(
            403, description=_("This sign-in link has expired or was revoked; ask for a new one.")
        )
    return found


# Where a sign-in may go on to: one of our pages (a path on this host, never an
# open redirect), in printable ASCII only: no CR/LF, which a Location header
# cannot carry (Werkzeug refuses to send it, and the request ended in a 500).
_LOCAL_PAGE = re.compile(r"/app/[!-~]*")


@bp.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("pages.login"))
