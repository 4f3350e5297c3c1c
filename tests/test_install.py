"""Installing from a link (authorization code grant), embedded loads with
session tokens (token exchange), expiring tokens, uninstall and reinstall;
against a Shopify stand-in on loopback, through the same code as production."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from shopify_standin import ShopifyStandIn, serve
from sqlmodel import Session, select

from app import jobs
from app.factory import create_app
from app.models import OAuthState, Shop
from app.runtime import build_runtime
from app.shop_tokens import access_token
from integrations.shopify_admin import REQUIRED_TOPICS
from integrations.shopify_auth import sign_query
from support import OTHER_SHOP_DOMAIN, TEST_SECRET

SHOP = "fresh-store.myshopify.com"


@pytest.fixture
def standin(settings):
    standin = ShopifyStandIn(valid_tokens=set())
    standin.client_credentials = (settings.shopify_api_key, settings.shopify_api_secret)
    with serve(standin) as base_url:
        standin.base_url = base_url
        yield standin


@pytest.fixture
def configured(settings, standin):
    """Shopify at the stand-in; our public URL is HTTPS, as Shopify requires of
    webhook addresses."""
    return dataclasses.replace(
        settings, shopify_url_template=standin.base_url, public_url="https://careloop.example.com"
    )


@pytest.fixture
def shopify_app(configured, db, clock):
    return create_app(build_runtime(configured, engine=db, clock=clock))


@pytest.fixture
def browser(shopify_app):
    return shopify_app.test_client()


@pytest.fixture
def finish(shopify_app):
    """Run the queued after-install work, as a worker would."""
    return lambda: jobs.run_shop_jobs(shopify_app.extensions["careloop"])


def signed(clock, **params) -> dict[str, str]:
    params = {"shop": SHOP, "timestamp": str(int(clock.now().timestamp()))} | params
    return params | {"hmac": sign_query(params, TEST_SECRET)}


def shop_row(db, domain=SHOP) -> Shop | None:
    with Session(db) as session:
        return session.exec(select(Shop).where(Shop.domain == domain)).first()


def install(browser, clock, standin, code="code-1"):
    started = browser.get("/auth/install", query_string=signed(clock))
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    standin.codes.add(code)
    return browser.get("/auth/callback", query_string=signed(clock, code=code, state=state))


def test_install_link_sends_the_merchant_to_shopifys_consent_screen(browser, clock, configured):
    response = browser.get("/auth/install", query_string=signed(clock))
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    query = parse_qs(target.query)
    assert target.path == "/admin/oauth/authorize"
    assert query["client_id"] == [configured.shopify_api_key]
    assert "read_all_orders" in query["scope"][0]
    assert query["redirect_uri"] == [f"{configured.public_url}/auth/callback"]
    assert len(query["state"][0]) >= 24


def test_callback_installs_with_encrypted_expiring_tokens_and_subscribes_webhooks(
    browser, clock, standin, db, configured, finish
):
    response = install(browser, clock, standin)
    assert response.status_code == 302 and response.headers["Location"].endswith("/app/")
    # The merchant's request only recorded the install; a worker does the rest.
    assert standin.graphql_calls() == []
    assert finish() == 1

    shop = shop_row(db)
    assert shop is not None and shop.uninstalled_at is None
    assert shop.access_token_expires_at == clock.now() + timedelta(hours=1)
    token = next(iter(standin.valid_tokens))
    assert token not in shop.access_token_encrypted  # encrypted at rest
    topics = sorted(s["topic"] for s in standin.subscriptions.values())
    assert topics == sorted(REQUIRED_TOPICS)
    assert {s["uri"] for s in standin.subscriptions.values()} == {
        f"{configured.public_url}/webhooks/shopify"
    }
    assert browser.get("/app/orders").status_code == 200  # signed in as the shop


def test_reinstalling_does_not_duplicate_webhook_subscriptions(browser, clock, standin, db, finish):
    install(browser, clock, standin, code="one")
    finish()
    clock.advance(seconds=1)
    install(browser, clock, standin, code="two")
    assert finish() == 1  # each install queues its own after-install job
    assert len(standin.subscriptions) == len(REQUIRED_TOPICS)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda q: q | {"hmac": "0" * 64}, id="forged-hmac"),
        pytest.param(lambda q: {k: v for k, v in q.items() if k != "hmac"}, id="no-hmac"),
        pytest.param(lambda q: q | {"shop": OTHER_SHOP_DOMAIN}, id="replayed-for-another-shop"),
    ],
)
def test_a_forged_install_link_is_refused_before_any_redirect(browser, clock, standin, tamper):
    response = browser.get("/auth/install", query_string=tamper(signed(clock)))
    assert response.status_code == 401
    assert "Location" not in response.headers and standin.requests == []


def test_a_stale_install_link_is_refused(browser, clock):
    old = signed(clock)
    clock.advance(minutes=10)
    assert browser.get("/auth/install", query_string=old).status_code == 401


@pytest.mark.parametrize(
    "shop", ["x.myshopify.com.evil.com", "evil.com", "myshopify.com", "a_b.myshopify.com"]
)
def test_hostile_shop_domains_are_refused_before_anything_else(browser, clock, standin, shop):
    response = browser.get("/auth/install", query_string=signed(clock, shop=shop))
    assert response.status_code == 400
    assert standin.requests == []


def test_callback_with_a_wrong_state_or_for_another_shop_is_refused(browser, clock, standin, db):
    browser.get("/auth/install", query_string=signed(clock))
    standin.codes.add("code-x")
    wrong_state = browser.get(
        "/auth/callback", query_string=signed(clock, code="code-x", state="x")
    )
    assert wrong_state.status_code == 403
    assert shop_row(db) is None and standin.requests == []


def test_a_callback_cannot_be_replayed(browser, clock, standin, db):
    browser.get("/auth/install", query_string=signed(clock))
    started = browser.get("/auth/install", query_string=signed(clock))
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    standin.codes.add("once")
    query = signed(clock, code="once", state=state)
    assert browser.get("/auth/callback", query_string=query).status_code == 302
    assert browser.get("/auth/callback", query_string=query).status_code == 403


def token_requests(standin) -> list[str]:
    """The authorization codes our app sent to Shopify's token endpoint."""
    return [r.body.get("code") for r in standin.requests if r.path.endswith("/access_token")]


def test_a_copy_of_the_state_cookie_cannot_be_replayed_with_another_code(
    browser, clock, standin, db
):
    """The state was only in the signed session cookie: whoever kept a copy
    could bring it back, within its lifetime, with another code."""
    started = browser.get("/auth/install", query_string=signed(clock))
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    copy = browser.get_cookie("session").value
    standin.codes.update({"first", "second"})
    first = browser.get("/auth/callback", query_string=signed(clock, code="first", state=state))
    assert first.status_code == 302

    browser.set_cookie("session", copy)  # the cookie as it was before the callback
    clock.advance(minutes=1)
    replay = browser.get("/auth/callback", query_string=signed(clock, code="second", state=state))

    assert replay.status_code == 403
    assert token_requests(standin) == ["first"]


def test_a_state_older_than_its_lifetime_is_refused(browser, clock, standin, db):
    started = browser.get("/auth/install", query_string=signed(clock))
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    standin.codes.add("late")
    clock.advance(minutes=11)

    late = browser.get("/auth/callback", query_string=signed(clock, code="late", state=state))

    assert late.status_code == 403
    assert shop_row(db) is None and token_requests(standin) == []


def test_expired_states_are_purged_when_a_new_install_starts(browser, clock, db):
    browser.get("/auth/install", query_string=signed(clock))
    clock.advance(minutes=11)
    browser.get("/auth/install", query_string=signed(clock))

    with Session(db) as session:
        assert len(session.exec(select(OAuthState)).all()) == 1


def session_token(settings, clock, shop=SHOP, **changes) -> str:
    now = int(clock.now().timestamp())
    claims = {
        "iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": settings.shopify_api_key,
        "sub": "42", "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": "j", "sid": "s",
    } | changes  # fmt: skip
    return jwt.encode(claims, settings.shopify_api_secret, algorithm="HS256")


def test_first_embedded_load_exchanges_the_session_token_and_installs_the_shop(
    browser, clock, standin, db, settings, finish
):
    token = session_token(settings, clock)
    response = browser.get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    shop = shop_row(db)
    assert shop is not None and shop.refresh_token_encrypted
    assert standin.subscriptions == {}  # not inside the request
    assert finish() == 1
    assert len(standin.subscriptions) == len(REQUIRED_TOPICS)

    page = browser.get("/app/orders", query_string={"id_token": token, "shop": SHOP})
    assert page.status_code == 200 and SHOP in page.get_data(as_text=True)


@pytest.mark.parametrize(
    "changes",
    [{"exp": 0}, {"aud": "another-app"}, {"dest": f"https://{OTHER_SHOP_DOMAIN}"}],
    ids=["expired", "wrong-audience", "iss-and-dest-differ"],
)
def test_a_bad_session_token_is_refused_and_installs_nothing(
    browser, clock, standin, db, settings, changes
):
    token = session_token(settings, clock, **changes)
    response = browser.get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert shop_row(db) is None and standin.requests == []


def test_a_session_token_of_one_shop_never_reads_another(
    browser, clock, standin, db, settings, shop, deliver, work
):
    deliver("orders/create", "orders_create")  # for demo-store, not fresh-store
    work()
    token = session_token(settings, clock)
    auth = {"Authorization": f"Bearer {token}"}
    assert browser.get("/api/v1/orders", headers=auth).json["orders"] == []
    assert browser.get("/api/v1/orders/5001001", headers=auth).status_code == 404


def test_expiring_token_is_refreshed_before_it_expires(browser, clock, standin, db, shopify_app):
    install(browser, clock, standin)
    rt = shopify_app.extensions["careloop"]
    first = next(iter(standin.valid_tokens))
    clock.advance(minutes=57)
    with Session(db) as session:
        shop = session.exec(select(Shop).where(Shop.domain == SHOP)).one()
        token = access_token(session, shop, rt.secrets, rt.oauth, clock.now())
        session.commit()
    assert token != first and token in standin.valid_tokens
    assert shop_row(db).access_token_expires_at == clock.now() + timedelta(hours=1)


def test_uninstall_forgets_the_tokens_and_a_reinstall_resumes(
    browser, clock, standin, db, client, deliver, work
):
    install(browser, clock, standin)
    deliver("app/uninstalled", "app_uninstalled", domain=SHOP)
    work()
    gone = shop_row(db)
    assert gone.uninstalled_at is not None
    assert gone.access_token_encrypted is None and gone.refresh_token_encrypted is None

    install(browser, clock, standin, code="again")
    back = shop_row(db)
    assert back.uninstalled_at is None and back.access_token_encrypted
    assert deliver("orders/create", "orders_create", domain=SHOP).status_code == 200


def test_a_token_revoked_early_is_refreshed_once_and_the_call_retried(
    browser, clock, standin, db, shopify_app, finish
):
    from app.shop_tokens import with_admin
    from integrations.shopify_admin import list_webhook_subscriptions

    install(browser, clock, standin)
    finish()
    standin.valid_tokens.clear()  # Shopify revoked it before its hour was up
    rt = shopify_app.extensions["careloop"]
    with Session(db) as session:
        shop = session.exec(select(Shop).where(Shop.domain == SHOP)).one()
        listed = with_admin(session, rt, shop, list_webhook_subscriptions)
        session.commit()
    assert len(listed) == len(REQUIRED_TOPICS)
    assert len(standin.valid_tokens) == 1  # the refreshed one, now stored


def test_a_session_token_signed_with_another_secret_is_refused(
    browser, clock, standin, db, settings
):
    claims = jwt.decode(session_token(settings, clock), options={"verify_signature": False})
    forged = jwt.encode(claims, "another-app-secret-of-32-bytes-or-more", algorithm="HS256")
    response = browser.get("/api/v1/orders", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert shop_row(db) is None and standin.requests == []
