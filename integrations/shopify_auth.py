"""Shopify app authentication: signed query strings, App Bridge session tokens,
and offline access tokens (authorization code, token exchange, refresh).

Pure functions plus one HTTP client; no Flask, no database. Formats relied on,
with where each is stated:

- Query-string HMAC (install, OAuth callback and admin-link requests): every
  parameter except `hmac` (and the legacy `signature`) is kept; in keys `%`,
  `&` and `=` become `%25`, `%26`, `%3D`, in values `%` and `&` become `%25`
  and `%26`; an array parameter `ids[]=2&ids[]=1` is signed as
  `ids=["2", "1"]` (JSON, a space after each comma); the pairs are sorted,
  joined as `key=value` with `&`, and signed with HMAC-SHA256 keyed with the
  app's client secret, sent as lowercase hex. Sources: shopify.dev "Implement
  authorization code grant manually" (step 1, remove `hmac`, sort, HMAC-SHA256,
  with the worked example `hush` → `700e2dad…`); the delimiter escaping is
  what Shopify's server applies (Shopify/shopify-api-ruby PR #188: "the same
  escaping that we added in Shopify for generating the signature"), as in
  Shopify/shopify_python_api `Session.calculate_hmac`, which also carries the
  `ids[]` rule. Shopify's JavaScript library percent-encodes values instead;
  the two agree on everything Shopify itself puts in these URLs (shop domain,
  digits, hex, unpadded base64 `host`, JWT `id_token`), so an app that makes
  its `state` from URL-safe characters never meets the difference.
- Session tokens (App Bridge `id_token`): a JWT signed HS256 with the client
  secret; `iss` = `https://<shop>.myshopify.com/admin`, `dest` =
  `https://<shop>.myshopify.com`, `aud` = client id, `sub` = user id, `exp`,
  `nbf`, `iat`, `jti`, `sid`; valid for one minute. Shopify's own libraries
  accept 10 seconds of clock skew. Sources: shopify.dev "About session tokens";
  Shopify/shopify-api-ruby `Auth::JwtPayload`; Shopify/shopify-app-js
  `decodeSessionToken` (HS256 only, audience = client id).
- Access tokens: `POST https://{shop}/admin/oauth/access_token` with a JSON body
  of `client_id`, `client_secret` and either `code` (authorization code
  grant), or `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
  `subject_token` (the session token),
  `subject_token_type=urn:ietf:params:oauth:token-type:id_token`,
  `requested_token_type=urn:shopify:params:oauth:token-type:offline-access-token`
  (token exchange), or `grant_type=refresh_token` + `refresh_token`. `expiring=1`
  asks for an expiring offline token (Shopify's default is 0, non-expiring).
  Answers: `access_token`, `scope` (comma-separated), and for expiring tokens
  `expires_in` (3600 s), `refresh_token` and `refresh_token_expires_in`
  (90 days); errors carry `error` / `error_description` (or `errors`). Sources:
  shopify.dev "Exchange a session token for an access token", "About offline
  access tokens", changelog 2025-12-10 "Offline access tokens now support
  expiry and refresh"; Shopify/shopify-app-js `tokenExchange`, `refreshToken`,
  `createSession`; Shopify/shopify-api-ruby PR #1423 (the code grant takes
  `expiring` too). Public apps must use expiring offline tokens from
  2027-01-01, and a new expiring token revokes the shop's previous ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import jwt
import requests

from app.clock import utcnow
from integrations.shopify import is_shop_domain

TOKEN_PATH = "/admin/oauth/access_token"
AUTHORIZE_PATH = "/admin/oauth/authorize"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
# Parameters that carry a signature rather than being signed.
_UNSIGNED = ("hmac", "signature")


# --- Signed query strings ------------------------------------------------------


def sign_query(params: Mapping[str, str | Sequence[str]], secret: str) -> str:
    """The `hmac` value Shopify would put on these parameters (for stand-ins and
    tests). Raises ValueError for a query Shopify never signs: a parameter
    repeated without `[]`, or `ids` beside `ids[]`."""
    message = _query_message(params)
    if message is None:
        raise ValueError("a parameter is repeated; Shopify signs no such query")
    return _hex_hmac(secret, message)


def verify_query_hmac(params: Mapping[str, str | Sequence[str]], secret: str) -> bool:
    """Whether `params` (the decoded query, e.g. `request.args.to_dict(flat=False)`)
    carry a valid `hmac`, compared in constant time. Check `is_fresh(timestamp)`
    too: the signature alone does not stop a replay."""
    if not secret:
        raise ValueError("the client secret is empty")
    given = _single(params.get("hmac"))
    message = _query_message(params)
    if not given or message is None:
        return False
    return hmac.compare_digest(_hex_hmac(secret, message).encode(), given.encode())


def is_fresh(timestamp: str, now: datetime, tolerance: timedelta = timedelta(minutes=5)) -> bool:
    """Whether a request's `timestamp` (Unix seconds) is within `tolerance` of
    `now`, either way (clocks drift both ways)."""
    if not (isinstance(timestamp, str) and timestamp.isascii() and timestamp.isdigit()):
        return False
    return abs(now.timestamp() - int(timestamp)) <= tolerance.total_seconds()


def _query_message(params: Mapping[str, str | Sequence[str]]) -> str | None:
    """The signed string, or None when the query cannot be one Shopify signed.
    Pairs are ordered by (escaped) name, as Shopify's libraries sort them."""
    pairs: dict[str, str] = {}
    for key, value in params.items():
        if key in _UNSIGNED:
            continue
        values = [value] if isinstance(value, str) else list(value)
        if key.endswith("[]"):
            name, text = key[:-2], json.dumps([str(v) for v in values])
        elif len(values) == 1:
            name, text = key, str(values[0])
        else:
            return None
        name = name.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
        if name in pairs:  # `ids` and `ids[]` together: ambiguous
            return None
        pairs[name] = text.replace("%", "%25").replace("&", "%26")
    return "&".join(f"{name}={pairs[name]}" for name in sorted(pairs))


def _single(value: str | Sequence[str] | None) -> str | None:
    if isinstance(value, str):
        return value
    if value is not None and len(value) == 1:
        return value[0]
    return None


def _hex_hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


# --- Session tokens --------------------------------------------------------------


class SessionTokenError(ValueError):
    """A session token we do not accept; `reason` says why (never the token)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SessionClaims:
    """Who a verified session token speaks for."""

    shop: str  # "<name>.myshopify.com"
    user_id: str | None  # `sub`: the staff member using the embedded app
    session_id: str | None  # `sid`
    expires_at: datetime


def verify_session_token(
    token: str, secret: str, client_id: str, now: datetime, leeway_seconds: int = 10
) -> SessionClaims:
    """Verify an App Bridge session token and return its claims, or raise
    SessionTokenError. PyJWT checks the HS256 signature (and refuses `none`
    and every other algorithm, so an RS256 token cannot be checked against
    the secret as if it were a public key); time and claims are checked here
    against `now`, so tests and the caller's clock decide what "now" is."""
    if not secret or not client_id:
        raise ValueError("the client secret and client id must be set")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.InvalidAlgorithmError:
        raise SessionTokenError("algorithm not allowed: only HS256 is accepted") from None
    except jwt.InvalidSignatureError:
        raise SessionTokenError("signature does not match the client secret") from None
    except jwt.PyJWTError:
        raise SessionTokenError("malformed token") from None

    if claims.get("aud") != client_id:
        raise SessionTokenError("audience is not this app's client id")
    expires, not_before = _numeric(claims, "exp"), _numeric(claims, "nbf")
    moment = now.timestamp()
    if moment > expires + leeway_seconds:
        raise SessionTokenError("token expired")
    if moment < not_before - leeway_seconds:
        raise SessionTokenError("token not valid yet")
    shop = _shop_of(claims)
    return SessionClaims(
        shop=shop.lower(),
        user_id=_optional_text(claims, "sub"),
        session_id=_optional_text(claims, "sid"),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


def _numeric(claims: dict, name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SessionTokenError(f"missing or non-numeric {name}")
    return value


def _shop_of(claims: dict) -> str:
    """The shop `dest` names, provided `iss` is that same shop's admin."""
    dest, issuer = claims.get("dest"), claims.get("iss")
    if not isinstance(dest, str) or not isinstance(issuer, str):
        raise SessionTokenError("missing iss or dest")
    prefix = "https://"
    shop = dest[len(prefix) :] if dest.startswith(prefix) else ""
    if not is_shop_domain(shop):
        raise SessionTokenError("dest is not https://<shop>.myshopify.com")
    if issuer != f"{prefix}{shop}/admin":
        raise SessionTokenError("iss and dest do not name the same shop")
    return shop


def _optional_text(claims: dict, name: str) -> str | None:
    value = claims.get(name)
    if value is None or isinstance(value, str):
        return value
    raise SessionTokenError(f"{name} is not a string")


# --- Access tokens -----------------------------------------------------------------


class OAuthError(Exception):
    """Shopify refused a token request, or it could not be made. `status` is the
    HTTP status (None if no answer came); `reason` never holds a secret or token."""

    def __init__(self, status: int | None, reason: str):
        super().__init__(f"{reason} (HTTP {status})" if status else reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class TokenSet:
    """An offline access token as Shopify granted it. `expires_at` and the
    refresh fields are None for a non-expiring token. The tokens stay out of
    repr() so that logging a TokenSet leaks nothing."""

    access_token: str = field(repr=False)
    scopes: frozenset[str]
    expires_at: datetime | None
    refresh_token: str | None = field(repr=False)
    refresh_expires_at: datetime | None


class OAuthClient:
    """Talks to a shop's `/admin/oauth/access_token`. Only ever to a
    `<name>.myshopify.com` shop (the client secret goes in the body), never
    following redirects (a 307 would re-send that body elsewhere)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        timeout_seconds: float = 10,
        base_url_for: Callable[[str], str] | None = None,
        session: requests.Session | None = None,
        now: Callable[[], datetime] = utcnow,
    ):
        if not client_id or not client_secret:
            raise ValueError("the client id and client secret must be set")
        self.client_id = client_id
        self._client_secret = client_secret
        self.timeout_seconds = timeout_seconds
        self._base_url_for = base_url_for or (lambda shop: f"https://{shop}")
        self._session = session or requests.Session()
        self._now = now

    def __repr__(self) -> str:
        return f"OAuthClient(client_id={self.client_id!r})"

    def authorize_url(self, shop: str, scopes: Sequence[str], redirect_uri: str, state: str) -> str:
        """Where to send the merchant for the authorization code grant. No
        `grant_options[]=per-user`: the token asked for is offline."""
        query = urlencode(
            {
                "client_id": self.client_id,
                "scope": ",".join(scopes),
                "redirect_uri": redirect_uri,
                "state": state,
            }
        )
        return f"{self._base(shop)}{AUTHORIZE_PATH}?{query}"

    def exchange_code(self, shop: str, code: str) -> TokenSet:
        """Redeem the `code` from the OAuth callback (after its HMAC, timestamp
        and state were checked) for an expiring offline token."""
        return self._request(shop, {"code": _required(code, "code"), "expiring": "1"}, [code])

    def exchange_session_token(self, shop: str, session_token: str) -> TokenSet:
        """Trade an App Bridge session token for an expiring offline token."""
        body = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": _required(session_token, "session token"),
            "subject_token_type": ID_TOKEN_TYPE,
            "requested_token_type": OFFLINE_TOKEN_TYPE,
            "expiring": "1",
        }
        return self._request(shop, body, [session_token])

    def refresh(self, shop: str, refresh_token: str) -> TokenSet:
        """A new access token (and a new refresh token: store both, the old
        refresh token stops working once the new one is used)."""
        body = {
            "grant_type": "refresh_token",
            "refresh_token": _required(refresh_token, "refresh token"),
        }
        return self._request(shop, body, [refresh_token])

    def _base(self, shop: str) -> str:
        if not isinstance(shop, str) or not is_shop_domain(shop):
            raise ValueError("not a shop domain of the form <name>.myshopify.com")
        return self._base_url_for(shop).rstrip("/")

    def _request(self, shop: str, grant: dict[str, str], sensitive: list[str]) -> TokenSet:
        url = self._base(shop) + TOKEN_PATH
        body = {"client_id": self.client_id, "client_secret": self._client_secret, **grant}
        try:
            response = self._session.post(
                url,
                json=body,
                headers={"Accept": "application/json"},
                timeout=self.timeout_seconds,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise OAuthError(None, f"no answer within {self.timeout_seconds} s") from None
        except requests.RequestException as exc:
            raise OAuthError(None, f"request failed: {type(exc).__name__}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200:
            reason = _error_reason(payload) or "no OAuth error in the answer"
            reason = _scrub(reason, [self._client_secret, *sensitive])[:200]
            raise OAuthError(response.status_code, reason)
        return self._token_set(payload, response.status_code)

    def _token_set(self, payload: object, status: int) -> TokenSet:
        if not isinstance(payload, dict):
            raise OAuthError(status, "answer is not a JSON object")
        access_token, scope = payload.get("access_token"), payload.get("scope")
        if not isinstance(access_token, str) or not access_token:
            raise OAuthError(status, "answer has no access_token")
        if not isinstance(scope, str):
            raise OAuthError(status, "answer has no scope")
        refresh_token = payload.get("refresh_token")
        if refresh_token is not None and not isinstance(refresh_token, str):
            raise OAuthError(status, "refresh_token is not a string")
        now = self._now()
        return TokenSet(
            access_token=access_token,
            scopes=frozenset(s.strip() for s in scope.split(",") if s.strip()),
            expires_at=_expiry(now, payload, "expires_in", status),
            refresh_token=refresh_token or None,
            refresh_expires_at=_expiry(now, payload, "refresh_token_expires_in", status),
        )


def _required(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"the {what} is empty")
    return value


def _expiry(now: datetime, payload: dict, name: str, status: int) -> datetime | None:
    seconds = payload.get(name)
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise OAuthError(status, f"{name} is not a positive number of seconds")
    return now + timedelta(seconds=seconds)


def _error_reason(payload: object) -> str | None:
    """Shopify's OAuth error (`error`, `error_description`) or `errors`."""
    if not isinstance(payload, dict):
        return None
    parts = [payload.get("error"), payload.get("error_description")]
    if not any(parts):
        errors = payload.get("errors")
        parts = [errors if isinstance(errors, str) else json.dumps(errors) if errors else None]
    return ": ".join(str(p) for p in parts if p) or None


def _scrub(text: str, secrets: list[str]) -> str:
    """Shopify's message with anything we sent it blanked out, in case it
    echoes a code or token back."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
