"""Shopify app authentication (integrations/shopify_auth.py): signed query
strings, App Bridge session tokens, and the OAuth token endpoint.

Query signatures are checked against the worked examples Shopify published
(secret `hush`) and against messages written out by hand from the documented
rules, not against the code under test. Session tokens are minted with PyJWT
(or, for the forgeries, by hand). The OAuth client talks over loopback to a
stand-in for `POST /admin/oauth/access_token` built from Shopify's documented
request fields and answers; it checks the client credentials and verifies
session tokens itself with PyJWT. Sources are listed in the module docstring
of integrations/shopify_auth.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from processes import serve_wsgi
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from integrations.shopify_auth import (
    ID_TOKEN_TYPE,
    OFFLINE_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
    OAuthClient,
    OAuthError,
    SessionClaims,
    SessionTokenError,
    TokenSet,
    is_fresh,
    sign_query,
    verify_query_hmac,
    verify_session_token,
)
from support import OTHER_SHOP_DOMAIN, SHOP_DOMAIN

# Shaped like real credentials: a 32-hex client id, `shpss_` + 32 hex secret
# (38 bytes, so PyJWT has no short-key warning).
CLIENT_ID = "3f9c4e1a7b2d58e06c1f4a9b2e7d3c58"
CLIENT_SECRET = "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"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SCOPES = "read_orders,read_customers,read_fulfillments"


def hex_hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


# --- Signed query strings ------------------------------------------------------------

# Shopify's worked example (shopify.dev, authorization code grant, "Verify the
# installation request"): secret `hush`, query with `hmac` removed
# code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com
# &state=0.6784241404160823&timestamp=1337178173.
DOCUMENTED_QUERY = {
    "code": "0907a61c0c8d55e99db179b68161bc00",
    "hmac": "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf",
    "shop": "some-shop.myshopify.com",
    "state": "0.6784241404160823",
    "timestamp": "1337178173",
}
# The older example without `state`, as Shopify's Python library tests it
# ("the secret and parameter examples given in the Shopify API documentation").
DOCUMENTED_QUERY_NO_STATE = {
    "shop": "some-shop.myshopify.com",
    "code": "a94a110d86d2452eb3e2af4cfb8a3828",
    "timestamp": "1337178173",
    "hmac": "2cb1a277650a659f1b11e92a4a64275b128e037f2c3390e3c8fd2d8721dac9e2",
}


@pytest.mark.parametrize("query", [DOCUMENTED_QUERY, DOCUMENTED_QUERY_NO_STATE])
def test_shopifys_documented_examples_verify_and_sign_to_the_published_hmac(query):
    assert verify_query_hmac(query, "hush")
    assert sign_query(query, "hush") == query["hmac"]


def test_the_order_of_parameters_does_not_matter():
    reordered = dict(reversed(list(DOCUMENTED_QUERY.items())))
    assert list(reordered) != list(DOCUMENTED_QUERY)
    assert verify_query_hmac(reordered, "hush")


def test_a_multidict_of_single_values_verifies_like_a_plain_dict():
    """What a Flask view has: request.args.to_dict(flat=False)."""
    args = MultiDict(list(DOCUMENTED_QUERY.items())).to_dict(flat=False)
    assert args["shop"] == ["some-shop.myshopify.com"]
    assert verify_query_hmac(args, "hush")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda q: q.update(shop="other-shop.myshopify.com"), id="changed shop"),
        pytest.param(lambda q: q.update(timestamp="1337178174"), id="changed timestamp"),
        pytest.param(lambda q: q.update(host="YWRtaW4uc2hvcGlmeS5jb20"), id="added parameter"),
        pytest.param(lambda q: q.pop("state"), id="removed parameter"),
        pytest.param(lambda q: q.update(hmac=q["hmac"][:-1] + "0"), id="changed hmac"),
        pytest.param(lambda q: q.update(hmac=q["hmac"].upper()), id="uppercased hmac"),
        pytest.param(lambda q: q.pop("hmac"), id="no hmac"),
        pytest.param(lambda q: q.update(hmac=""), id="empty hmac"),
        pytest.param(lambda q: q.update(hmac="é" * 64), id="non-ascii hmac"),
        pytest.param(lambda q: q.update(hmac=[q["hmac"], q["hmac"]]), id="hmac given twice"),
    ],
)
def test_tampered_queries_are_refused(tamper):
    query = dict(DOCUMENTED_QUERY)
    tamper(query)
    assert not verify_query_hmac(query, "hush")


def test_a_query_signed_with_another_secret_is_refused():
    assert not verify_query_hmac(DOCUMENTED_QUERY, "not-hush")


def test_the_legacy_signature_parameter_is_not_signed():
    """Older docs: remove `hmac` and `signature` before signing."""
    assert verify_query_hmac({**DOCUMENTED_QUERY, "signature": "anything"}, "hush")


def test_delimiters_in_keys_and_values_are_escaped_as_shopify_does():
    """Vector from Shopify's Python library: `&` and `%` escaped everywhere,
    `=` in keys, so a value cannot smuggle in another parameter."""
    params = {"a": "1&b=2", "c=3&d": "4"}
    assert sign_query(params, "secret") == hex_hmac("secret", "a=1%26b=2&c%3D3%26d=4")
    two_params = {"a": "1", "b": "2"}
    smuggled = {"a": "1&b=2", "hmac": sign_query(two_params, "secret")}
    assert not verify_query_hmac(smuggled, "secret")


def test_percent_signs_are_escaped_so_an_encoded_form_is_not_the_same_value():
    assert sign_query({"a": "%26"}, "secret") == hex_hmac("secret", "a=%2526")
    assert sign_query({"a": "%26"}, "secret") != sign_query({"a": "&"}, "secret")


def test_an_ids_array_is_signed_as_a_json_list_in_the_order_given():
    """Admin bulk-action links send ids[]=2&ids[]=1; Shopify signs ids=["2", "1"]."""
    query = {"ids[]": ["2", "1"], "shop": SHOP_DOMAIN, "timestamp": "1700000000"}
    message = f'ids=["2", "1"]&shop={SHOP_DOMAIN}&timestamp=1700000000'
    query["hmac"] = hex_hmac(CLIENT_SECRET, message)
    assert verify_query_hmac(query, CLIENT_SECRET)
    assert not verify_query_hmac({**query, "ids[]": ["1", "2"]}, CLIENT_SECRET)
    assert not verify_query_hmac({**query, "ids[]": ["2"]}, CLIENT_SECRET)


def test_a_plain_parameter_given_twice_is_refused_not_guessed():
    """Shopify never signs a repeated plain key; which value counts would be a guess."""
    signed = {"shop": SHOP_DOMAIN, "timestamp": "1700000000"}
    signed["hmac"] = sign_query(signed, CLIENT_SECRET)
    assert verify_query_hmac(signed, CLIENT_SECRET)
    doubled = {**signed, "shop": [SHOP_DOMAIN, "evil.myshopify.com"]}
    assert not verify_query_hmac(doubled, CLIENT_SECRET)
    with pytest.raises(ValueError, match="repeated"):
        sign_query({"shop": ["a", "b"]}, CLIENT_SECRET)


def test_a_plain_parameter_beside_its_array_form_is_refused():
    signed = {"ids[]": ["1"], "timestamp": "1700000000"}
    signed["hmac"] = sign_query(signed, CLIENT_SECRET)
    assert verify_query_hmac(signed, CLIENT_SECRET)
    assert not verify_query_hmac({**signed, "ids": '["1"]'}, CLIENT_SECRET)


def test_an_empty_secret_is_a_configuration_error_not_a_bad_signature():
    with pytest.raises(ValueError, match="secret"):
        verify_query_hmac(DOCUMENTED_QUERY, "")


@pytest.mark.parametrize(
    ("offset", "fresh"),
    [
        (timedelta(0), True),
        (timedelta(minutes=-4, seconds=-59), True),
        (timedelta(minutes=4, seconds=59), True),
        (timedelta(minutes=-5, seconds=-1), False),
        (timedelta(minutes=5, seconds=1), False),
        (timedelta(days=-1), False),
    ],
)
def test_timestamps_are_fresh_within_five_minutes_either_way(offset, fresh):
    timestamp = str(int((NOW + offset).timestamp()))
    assert is_fresh(timestamp, NOW) is fresh


def test_the_tolerance_can_be_narrowed():
    timestamp = str(int((NOW - timedelta(seconds=91)).timestamp()))
    assert is_fresh(timestamp, NOW)
    assert not is_fresh(timestamp, NOW, tolerance=timedelta(seconds=90))


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "-5", " 1763812800", "1763812800.0", "\uff11\uff12"]
)
def test_timestamps_that_are_not_unix_seconds_are_not_fresh(timestamp):
    assert not is_fresh(timestamp, NOW)


# --- Session tokens ------------------------------------------------------------------


def claims(**changes) -> dict:
    """The payload App Bridge sends (shopify.dev, session tokens), at NOW."""
    issued = int(NOW.timestamp())
    payload = {
        "iss": f"https://{SHOP_DOMAIN}/admin",
        "dest": f"https://{SHOP_DOMAIN}",
        "aud": CLIENT_ID,
        "sub": "42",
        "exp": issued + 60,
        "nbf": issued,
        "iat": issued,
        "jti": str(uuid.uuid4()),
        "sid": "8a7c3f5e1d9b42c6a0e4f8b2d6c1a3e5",
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def session_token(payload: dict | None = None, secret: str = CLIENT_SECRET, alg="HS256") -> str:
    return jwt.encode(payload or claims(), secret, algorithm=alg)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(token: str, now: datetime = NOW) -> str:
    with pytest.raises(SessionTokenError) as raised:
        verify_session_token(token, CLIENT_SECRET, CLIENT_ID, now)
    assert not token or token not in str(raised.value)
    return raised.value.reason


def test_a_valid_session_token_gives_its_shop_user_and_session():
    payload = claims()
    verified = verify_session_token(session_token(payload), CLIENT_SECRET, CLIENT_ID, NOW)
    assert verified == SessionClaims(
        shop=SHOP_DOMAIN,
        user_id="42",
        session_id=payload["sid"],
        expires_at=NOW + timedelta(seconds=60),
    )


def test_a_token_without_user_or_session_still_names_its_shop():
    verified = verify_session_token(
        session_token(claims(sub=None, sid=None)), CLIENT_SECRET, CLIENT_ID, NOW
    )
    assert (verified.shop, verified.user_id, verified.session_id) == (SHOP_DOMAIN, None, None)


def test_an_expired_token_is_refused_after_the_leeway():
    token = session_token()
    expiry = NOW + timedelta(seconds=60)
    verified = verify_session_token(token, CLIENT_SECRET, CLIENT_ID, expiry + timedelta(seconds=10))
    assert verified.shop == SHOP_DOMAIN
    assert refused(token, now=expiry + timedelta(seconds=11)) == "token expired"


def test_a_token_used_before_nbf_is_refused_after_the_leeway():
    token = session_token()
    verified = verify_session_token(token, CLIENT_SECRET, CLIENT_ID, NOW - timedelta(seconds=10))
    assert verified.shop == SHOP_DOMAIN
    assert refused(token, now=NOW - timedelta(seconds=11)) == "token not valid yet"


def test_the_leeway_is_the_callers_choice():
    token = session_token()
    late = NOW + timedelta(seconds=65)
    with pytest.raises(SessionTokenError, match="expired"):
        verify_session_token(token, CLIENT_SECRET, CLIENT_ID, late, leeway_seconds=0)
    assert verify_session_token(token, CLIENT_SECRET, CLIENT_ID, late).shop == SHOP_DOMAIN


def test_a_token_for_another_app_is_refused():
    token = session_token(claims(aud="0123456789abcdef0123456789abcdef"))
    assert refused(token) == "audience is not this app's client id"


def test_an_audience_list_is_refused_even_if_it_contains_our_client_id():
    assert "audience" in refused(session_token(claims(aud=[CLIENT_ID, "other"])))


def test_a_token_signed_with_another_secret_is_refused():
    token = session_token(secret="shpss_00000000000000000000000000000000")
    assert refused(token) == "signature does not match the client secret"


def test_an_unsigned_alg_none_token_is_refused():
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{b64url(json.dumps(claims()).encode())}."
    assert "only HS256" in refused(token)


def test_an_hs512_token_signed_with_the_right_secret_is_refused():
    header = b64url(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims()).encode())
    mac = hmac.new(CLIENT_SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha512).digest()
    assert "only HS256" in refused(f"{header}.{body}.{b64url(mac)}")


def test_an_rs256_token_is_refused():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "only HS256" in refused(session_token(secret=key, alg="RS256"))


def test_an_rs256_header_over_an_hmac_of_the_secret_is_refused():
    """Algorithm confusion: a token claiming RS256 but MACed with the secret."""
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims()).encode())
    mac = hmac.new(CLIENT_SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    assert "only HS256" in refused(f"{header}.{body}.{b64url(mac)}")


def test_iss_and_dest_naming_different_shops_are_refused():
    token = session_token(claims(iss=f"https://{OTHER_SHOP_DOMAIN}/admin"))
    assert refused(token) == "iss and dest do not name the same shop"


@pytest.mark.parametrize(
    "dest",
    [
        "https://demo-store.myshopify.com.evil.com",
        "https://evil.com/demo-store.myshopify.com",
        "https://demo-store.myshopify.com@evil.com",
        "https://demo-store.myshopify.com/",
        "https://demo-store.myshopify.com:8443",
        "http://demo-store.myshopify.com",
        "https://evil.com",
        "https://.myshopify.com",
        "demo-store.myshopify.com",
    ],
)
def test_dest_that_is_not_a_shop_domain_is_refused_even_when_iss_agrees(dest):
    token = session_token(claims(dest=dest, iss=f"{dest}/admin"))
    assert refused(token) == "dest is not https://<shop>.myshopify.com"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": None}, "missing or non-numeric exp"),
        ({"exp": "1763812860"}, "missing or non-numeric exp"),
        ({"nbf": None}, "missing or non-numeric nbf"),
        ({"nbf": True}, "missing or non-numeric nbf"),
        ({"dest": None}, "missing iss or dest"),
        ({"iss": None}, "missing iss or dest"),
        ({"sub": 42}, "sub is not a string"),
    ],
)
def test_missing_or_mistyped_claims_are_refused(changes, reason):
    assert refused(session_token(claims(**changes))) == reason


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30"])
def test_malformed_tokens_are_refused(token):
    assert refused(token) == "malformed token"


def test_verification_needs_a_secret_and_client_id():
    with pytest.raises(ValueError):
        verify_session_token(session_token(), "", CLIENT_ID, NOW)
    with pytest.raises(ValueError):
        verify_session_token(session_token(), CLIENT_SECRET, "", NOW)


# --- The OAuth token endpoint --------------------------------------------------------


@dataclass
class Received:
    path: str
    content_type: str
    accept: str
    body: dict


# Request fields each grant takes (shopify.dev and Shopify's libraries).
CODE_FIELDS = {"client_id", "client_secret", "code", "expiring"}
EXCHANGE_FIELDS = {
    "client_id",
    "client_secret",
    "grant_type",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "expiring",
}
REFRESH_FIELDS = {"client_id", "client_secret", "grant_type", "refresh_token"}


def oauth_error(status: int, error: str, description: str) -> Response:
    return Response(
        json.dumps({"error": error, "error_description": description}),
        status=status,
        mimetype="application/json",
    )


@dataclass
class ShopifyStandIn:
    """`POST /admin/oauth/access_token` for one shop: JSON body with the client
    credentials and one of the three grants; answers `access_token`, `scope`
    and, when `expiring=1` was asked (or on refresh), `expires_in` 3600,
    `refresh_token` and `refresh_token_expires_in` 90 days; refresh tokens
    rotate. Errors are OAuth's `{error, error_description}`; an unknown code is
    echoed back in the description, so the client's redaction is tested."""

    codes: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    requests: list[Received] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    answers: list[Callable[[Received], Response]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, environ, start_response):
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/admin/oauth/access_token":
            self.violations.append(f"{request.method} {request.path}")
            return Response("not found", status=404)
        body = request.get_json(silent=True)
        received = Received(
            request.path, request.mimetype, request.headers.get("Accept", ""), body or {}
        )
        self.requests.append(received)
        if received.content_type != "application/json" or not isinstance(body, dict):
            self.violations.append(f"body of type {received.content_type}")
            return oauth_error(400, "invalid_request", "expected a JSON body")
        if self.answers:
            return self.answers.pop(0)(received)
        if (body.get("client_id"), body.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return oauth_error(401, "invalid_client", "Client authentication failed")
        grant = body.get("grant_type")
        if grant is None and "code" in body:
            return self.code_grant(body)
        if grant == TOKEN_EXCHANGE_GRANT:
            return self.token_exchange(body)
        if grant == "refresh_token":
            return self.refresh(body)
        return oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r}")

    def expect_fields(self, body: dict, names: set[str]) -> None:
        if set(body) != names:
            self.violations.append(f"fields {sorted(body)}, expected {sorted(names)}")

    def code_grant(self, body: dict) -> Response:
        self.expect_fields(body, CODE_FIELDS)
        code = body["code"]
        if code not in self.codes:
            description = f"The authorization code {code} was not found or was already used"
            return oauth_error(400, "invalid_request", description)
        self.codes.discard(code)
        return self.granted(expiring=body.get("expiring") == "1")

    def token_exchange(self, body: dict) -> Response:
        self.expect_fields(body, EXCHANGE_FIELDS)
        if body.get("subject_token_type") != ID_TOKEN_TYPE:
            return oauth_error(400, "invalid_request", "subject_token_type")
        if body.get("requested_token_type") != OFFLINE_TOKEN_TYPE:
            return oauth_error(400, "invalid_request", "requested_token_type")
        try:  # Shopify checks the session token itself: signature, audience, lifetime
            jwt.decode(
                body.get("subject_token", ""),
                CLIENT_SECRET,
                algorithms=["HS256"],
                audience=CLIENT_ID,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            return oauth_error(400, "invalid_subject_token", "Session token is invalid")
        return self.granted(expiring=body.get("expiring") == "1")

    def refresh(self, body: dict) -> Response:
        self.expect_fields(body, REFRESH_FIELDS)
        token = body.get("refresh_token")
        if token not in self.refresh_tokens:
            return oauth_error(400, "invalid_grant", "The refresh token is invalid or expired")
        self.refresh_tokens.discard(token)
        return self.granted(expiring=True)

    def granted(self, *, expiring: bool) -> Response:
        answer: dict = {"access_token": "shpat_" + uuid.uuid4().hex, "scope": SCOPES}
        if expiring:
            refresh_token = "shprt_" + uuid.uuid4().hex
            self.refresh_tokens.add(refresh_token)
            answer.update(
                expires_in=3600,
                refresh_token=refresh_token,
                refresh_token_expires_in=7_776_000,
            )
        return Response(json.dumps(answer), status=200, mimetype="application/json")


@pytest.fixture(scope="module")
def standin_server() -> Iterator[tuple[ShopifyStandIn, str]]:
    standin = ShopifyStandIn()
    with serve_wsgi(standin) as url:
        yield standin, url
        standin.release.set()


@pytest.fixture
def standin(standin_server) -> Iterator[ShopifyStandIn]:
    standin, _ = standin_server
    standin.release.set()
    standin.__init__()
    yield standin
    standin.release.set()
    assert standin.violations == []


@pytest.fixture
def base_url(standin_server) -> str:
    return standin_server[1]


@pytest.fixture
def client(standin, base_url) -> OAuthClient:
    return OAuthClient(
        CLIENT_ID, CLIENT_SECRET, base_url_for=lambda shop: base_url, now=lambda: NOW
    )


def assert_expiring(tokens: TokenSet) -> None:
    assert tokens.access_token.startswith("shpat_")
    assert tokens.scopes == frozenset({"read_orders", "read_customers", "read_fulfillments"})
    assert tokens.expires_at == NOW + timedelta(hours=1)
    assert tokens.refresh_token is not None and tokens.refresh_token.startswith("shprt_")
    assert tokens.refresh_expires_at == NOW + timedelta(days=90)


def test_an_authorization_code_becomes_an_expiring_offline_token(standin, client):
    standin.codes.add("0907a61c0c8d55e99db179b68161bc00")
    tokens = client.exchange_code(SHOP_DOMAIN, "0907a61c0c8d55e99db179b68161bc00")
    assert_expiring(tokens)
    (sent,) = standin.requests
    assert sent.body == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code": "0907a61c0c8d55e99db179b68161bc00",
        "expiring": "1",
    }
    assert (sent.content_type, sent.accept) == ("application/json", "application/json")


def test_a_session_token_is_exchanged_for_an_expiring_offline_token(standin, client):
    token = session_token()
    assert_expiring(client.exchange_session_token(SHOP_DOMAIN, token))
    (sent,) = standin.requests
    assert sent.body == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
        "expiring": "1",
    }


def test_a_refresh_rotates_both_tokens_and_the_old_refresh_token_stops_working(standin, client):
    first = client.exchange_session_token(SHOP_DOMAIN, session_token())
    second = client.refresh(SHOP_DOMAIN, first.refresh_token)
    assert_expiring(second)
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    assert standin.requests[1].body == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": first.refresh_token,
    }
    with pytest.raises(OAuthError) as raised:
        client.refresh(SHOP_DOMAIN, first.refresh_token)
    assert raised.value.status == 400
    assert raised.value.reason == "invalid_grant: The refresh token is invalid or expired"
    assert first.refresh_token not in str(raised.value)


def test_expiry_is_counted_from_the_injected_clock(standin, base_url):
    later = NOW + timedelta(days=3)
    client = OAuthClient(
        CLIENT_ID, CLIENT_SECRET, base_url_for=lambda shop: base_url, now=lambda: later
    )
    tokens = client.exchange_session_token(SHOP_DOMAIN, session_token())
    assert tokens.expires_at == later + timedelta(seconds=3600)
    assert tokens.refresh_expires_at == later + timedelta(seconds=7_776_000)


def test_a_non_expiring_answer_has_no_expiry_or_refresh_token(standin, client):
    standin.answers.append(lambda received: standin.granted(expiring=False))
    tokens = client.exchange_session_token(SHOP_DOMAIN, session_token())
    assert tokens.access_token.startswith("shpat_")
    assert (tokens.expires_at, tokens.refresh_token, tokens.refresh_expires_at) == (None,) * 3


def test_an_invalid_session_token_is_refused_by_shopify(standin, client):
    forged = session_token(secret="shpss_00000000000000000000000000000000")
    with pytest.raises(OAuthError) as raised:
        client.exchange_session_token(SHOP_DOMAIN, forged)
    assert raised.value.status == 400
    assert raised.value.reason == "invalid_subject_token: Session token is invalid"
    assert forged not in str(raised.value)


def test_wrong_client_credentials_are_an_error_without_the_secret(standin, base_url):
    wrong_secret = "shpss_0123456789abcdef0123456789abcdef"
    client = OAuthClient(CLIENT_ID, wrong_secret, base_url_for=lambda shop: base_url)
    standin.codes.add("a94a110d86d2452eb3e2af4cfb8a3828")
    with pytest.raises(OAuthError) as raised:
        client.exchange_code(SHOP_DOMAIN, "a94a110d86d2452eb3e2af4cfb8a3828")
    assert raised.value.status == 401
    assert raised.value.reason == "invalid_client: Client authentication failed"
    assert wrong_secret not in str(raised.value)
    assert wrong_secret not in repr(client)


def test_an_error_that_echoes_the_code_is_redacted(standin, client):
    with pytest.raises(OAuthError) as raised:
        client.exchange_code(SHOP_DOMAIN, "f5be881c575fedf9491d26aff123ace7")
    assert raised.value.status == 400
    assert "f5be881c575fedf9491d26aff123ace7" not in str(raised.value)
    assert "[redacted]" in raised.value.reason


def test_an_error_that_echoes_the_client_secret_is_redacted(standin, client):
    standin.answers.append(
        lambda received: oauth_error(
            400, "invalid_request", f"bad {received.body['client_secret']}"
        )
    )
    with pytest.raises(OAuthError) as raised:
        client.refresh(SHOP_DOMAIN, "shprt_whatever")
    assert CLIENT_SECRET not in str(raised.value)
    assert raised.value.reason == "invalid_request: bad [redacted]"


def test_a_server_error_page_is_an_error_without_its_body(standin, client):
    standin.answers.append(
        lambda received: Response("<html>Internal error</html>", status=502, mimetype="text/html")
    )
    with pytest.raises(OAuthError) as raised:
        client.exchange_session_token(SHOP_DOMAIN, session_token())
    assert raised.value.status == 502
    assert "html" not in str(raised.value)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"scope": SCOPES}, "answer has no access_token"),
        ({"access_token": "shpat_x"}, "answer has no scope"),
        (
            {"access_token": "shpat_x", "scope": SCOPES, "expires_in": "3600"},
            "expires_in is not a positive number of seconds",
        ),
        ([], "answer is not a JSON object"),
    ],
)
def test_a_malformed_success_answer_is_an_error(standin, client, answer, reason):
    standin.answers.append(
        lambda received: Response(json.dumps(answer), status=200, mimetype="application/json")
    )
    with pytest.raises(OAuthError) as raised:
        client.exchange_session_token(SHOP_DOMAIN, session_token())
    assert (raised.value.status, raised.value.reason) == (200, reason)


def test_a_redirect_is_not_followed_with_the_secret(standin, client):
    """A 307 would make requests re-POST the body, client secret included."""
    standin.answers.append(
        lambda received: Response("", status=307, headers={"Location": "/admin/oauth/elsewhere"})
    )
    with pytest.raises(OAuthError) as raised:
        client.exchange_session_token(SHOP_DOMAIN, session_token())
    assert raised.value.status == 307
    assert [r.path for r in standin.requests] == ["/admin/oauth/access_token"]


def test_no_answer_within_the_timeout_is_an_error(standin, base_url):
    def slow(received):
        standin.release.wait(5)
        return standin.granted(expiring=True)

    standin.answers.append(slow)
    client = OAuthClient(
        CLIENT_ID, CLIENT_SECRET, timeout_seconds=0.2, base_url_for=lambda shop: base_url
    )
    with pytest.raises(OAuthError) as raised:
        client.exchange_session_token(SHOP_DOMAIN, session_token())
    assert (raised.value.status, raised.value.reason) == (None, "no answer within 0.2 s")


def test_an_unreachable_shop_is_an_error():
    with serve_wsgi(ShopifyStandIn()) as url:
        pass  # the port is closed again
    client = OAuthClient(CLIENT_ID, CLIENT_SECRET, base_url_for=lambda shop: url)
    with pytest.raises(OAuthError) as raised:
        client.refresh(SHOP_DOMAIN, "shprt_x")
    assert (raised.value.status, raised.value.reason) == (None, "request failed: ConnectionError")


@pytest.mark.parametrize(
    "shop",
    [
        "demo-store.myshopify.com.evil.com",
        "evil.com",
        "demo-store.myshopify.com/admin",
        "demo-store.myshopify.com@evil.com",
        "",
    ],
)
def test_secrets_are_never_sent_to_a_host_that_is_not_a_shop(standin, shop):
    asked: list[str] = []
    client = OAuthClient(CLIENT_ID, CLIENT_SECRET, base_url_for=asked.append)
    with pytest.raises(ValueError, match="shop domain"):
        client.exchange_code(shop, "code")
    with pytest.raises(ValueError, match="shop domain"):
        client.refresh(shop, "shprt_x")
    with pytest.raises(ValueError, match="shop domain"):
        client.authorize_url(shop, ["read_orders"], "https://app.example/cb", "state")
    assert asked == []
    assert standin.requests == []


def test_empty_codes_and_tokens_are_refused_before_any_request(standin, client):
    for call in (
        lambda: client.exchange_code(SHOP_DOMAIN, ""),
        lambda: client.exchange_session_token(SHOP_DOMAIN, ""),
        lambda: client.refresh(SHOP_DOMAIN, ""),
    ):
        with pytest.raises(ValueError, match="empty"):
            call()
    assert standin.requests == []


def test_the_default_base_url_is_the_shop_over_https():
    client = OAuthClient(CLIENT_ID, CLIENT_SECRET)
    url = client.authorize_url(SHOP_DOMAIN, ["read_orders"], "https://app.example/cb", "s")
    assert url.startswith(f"https://{SHOP_DOMAIN}/admin/oauth/authorize?")


def test_the_authorize_url_asks_for_offline_access(base_url, client):
    url = client.authorize_url(
        SHOP_DOMAIN,
        ["read_orders", "read_customers"],
        "https://careloop.example/auth/callback?x=1&y=2",
        "nonce-3f9c4e1a",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == base_url
    assert parts.path == "/admin/oauth/authorize"
    assert parse_qs(parts.query, keep_blank_values=True) == {
        "client_id": [CLIENT_ID],
        "scope": ["read_orders,read_customers"],
        "redirect_uri": ["https://careloop.example/auth/callback?x=1&y=2"],
        "state": ["nonce-3f9c4e1a"],
    }
    assert CLIENT_SECRET not in url


def test_a_token_set_keeps_its_tokens_out_of_repr(standin, client):
    tokens = client.exchange_session_token(SHOP_DOMAIN, session_token())
    text = repr(tokens)
    assert "read_orders" in text
    assert tokens.access_token not in text
    assert tokens.refresh_token not in text


def test_a_requests_session_can_be_supplied(standin, base_url):
    """The caller may share a connection pool; the client uses it, not its own."""
    used: list[str] = []

    class Recording(requests.Session):
        def post(self, url, **kwargs):
            used.append(url)
            return super().post(url, **kwargs)

    client = OAuthClient(
        CLIENT_ID, CLIENT_SECRET, base_url_for=lambda shop: base_url, session=Recording()
    )
    client.exchange_session_token(SHOP_DOMAIN, session_token())
    assert used == [f"{base_url}/admin/oauth/access_token"]
