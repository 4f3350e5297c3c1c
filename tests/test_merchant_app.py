"""The merchant app in headless Chromium: every page embedded in a Shopify
admin stand-in (another origin, session tokens only, cookies blocked) and
standalone (signed in with a token), each screenshotted
(test-artifacts/), checked with axe-core and at a phone's width; the bounce
page; a form left open past the token's lifetime; a merchant's first day.

One browser for the session (conftest's `browser`); SQLite only (the pages' queries run on both
databases in tests/test_merchant_pages.py)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from admin_standin import APP_BRIDGE, AdminStandIn
from browsing import (
    PHONE,
    accessibility_violations,
    follow,
    overflowing_tables,
    screenshot,
)
from playwright.sync_api import expect
from processes import serve_wsgi
from shopify_standin import ShopifyStandIn, serve
from sqlmodel import Session, select

from app import worker
from app.factory import create_app
from app.models import ProviderConnection, Shop, TemplateOverride
from app.runtime import build_runtime
from notifications.transports import from_settings
from support import SHIPBOB_SECRET, set_shop

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ADMIN = "https://admin.shopify.com"
APP_BRIDGE_URL = "https://cdn.shopify.com/shopifycloud/app-bridge.js"


@pytest.fixture
def live_server(app):
    with serve_wsgi(app) as base_url:
        yield base_url


@pytest.fixture
def installed(shop, db, rt):
    """The `shop` fixture as a Shopify install leaves it: with an offline
    token, so that its session tokens need no token exchange."""
    set_shop(db, shop.id, access_token_encrypted=rt.secrets.encrypt("shpat_installed"))
    return shop


class Embedded:
    """A browser tab on the admin stand-in, the app framed in it, with the
    app's cookies blocked: no request to the app carries one, and every
    Set-Cookie the app sends is recorded (there must be none)."""

    def __init__(self, browser, app_url: str, admin: AdminStandIn, admin_url: str):
        self.context = browser.new_context(viewport={"width": 1100, "height": 900})
        self.app_url, self.admin = app_url, admin
        self.cookies_sent: list[str] = []
        self.cookies_set: list[str] = []
        self.requests: list[str] = []
        self.responses: list = []
        self.context.route(
            f"{ADMIN}/**",
            lambda route: route.fulfill(
                response=route.fetch(url=route.request.url.replace(ADMIN, admin_url))
            ),
        )
        self.context.route(
            APP_BRIDGE_URL,
            lambda route: route.fulfill(body=APP_BRIDGE, content_type="text/javascript"),
        )
        self.context.route(f"{app_url}/**", self._without_cookies)
        self.page = self.context.new_page()
        self.page.on("response", self._response)
        self.page.on("request", lambda request: self.requests.append(request.url))

    def _without_cookies(self, route):
        headers = dict(route.request.headers)
        if "cookie" in headers:
            self.cookies_sent.append(headers.pop("cookie"))
        route.continue_(headers=headers)

    def _response(self, response):
        if response.url.startswith(self.app_url):
            self.responses.append(response)
            set_cookie = response.headers.get("set-cookie")
            if set_cookie:
                self.cookies_set.append(set_cookie)

    def open(self, shop: str, path: str, *, with_token: bool = True):
        """Open the app at `path` in the admin; returns its frame once the
        page has loaded there with a session token (after the bounce page
        when the admin gave none)."""
        name = shop.removesuffix(".myshopify.com")
        token = "" if with_token else "&token=0"
        pattern = re.compile(re.escape(self.app_url + path) + r"\?.*id_token=")
        with self.page.expect_event(
            "framenavigated", predicate=lambda frame: bool(pattern.match(frame.url))
        ) as navigated:
            self.page.goto(f"{ADMIN}/store/{name}/apps/careloop?path={path}{token}")
        frame = navigated.value
        frame.wait_for_load_state()
        return frame

    def go(self, frame, selector: str, path: str):
        """Click a link or a submit button in the app and wait for `path`."""
        frame.click(selector)
        frame.wait_for_url(re.compile(re.escape(self.app_url + path) + r"\?.*id_token="))
        frame.wait_for_load_state()
        return frame

    def assert_no_cookies(self):
        assert self.cookies_sent == [] and self.cookies_set == []
        assert self.context.cookies() == []

    def close(self):
        self.context.close()


@pytest.fixture
def embedded(browser, live_server, settings, clock):
    admin = AdminStandIn(
        secret=settings.shopify_api_secret, client_id=settings.shopify_api_key, clock=clock,
        app_origin=live_server,
    )  # fmt: skip
    with serve_wsgi(admin) as admin_url:
        tab = Embedded(browser, live_server, admin, admin_url)
        yield tab
        tab.close()


def _check(frame, page, name: str) -> None:
    screenshot(page, name)
    violations = accessibility_violations(frame)
    assert not violations, f"{name}: " + "\n".join(violations)


PAGES = [
    ("home", "/app/", "h1"),
    ("orders", "/app/orders", "#orders"),
    ("order", "/app/orders/5001001", "#line-items"),
    ("settings", "/app/settings", "#settings-form"),
    ("templates", "/app/templates", "#templates"),
    ("template", "/app/templates/shipping/email/en", "#template-form"),
    ("api-tokens", "/app/api-tokens", "#tokens"),
    ("support", "/app/support", "#service-level"),
    ("retention", "/app/retention", "h1"),
]


def test_every_page_standalone_is_accessible_and_fits_a_phone(
    installed, deliver, work, live_server, browser
):
    deliver("orders/create", "orders_create")
    work()
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{live_server}/app/login")
    _check(page, page, "standalone-login")
    page.fill("#token", installed.token)
    follow(page, "button[type=submit]")
    for name, path, landmark in PAGES:
        page.goto(f"{live_server}{path}")
        page.wait_for_selector(landmark)
        assert page.locator("html").get_attribute("data-embedded") == "0"
        assert overflowing_tables(page) == [], name
        _check(page, page, f"standalone-{name}")
    context.close()


def test_every_page_embedded_loads_with_session_tokens_only(installed, deliver, work, embedded):
    deliver("orders/create", "orders_create")
    work()
    embedded.context.set_default_timeout(10_000)
    for name, path, landmark in PAGES:
        frame = embedded.open(installed.domain, path)
        frame.wait_for_selector(landmark)
        assert frame.locator("html").get_attribute("data-embedded") == "1"
        _check(frame, embedded.page, f"embedded-{name}")
    embedded.assert_no_cookies()
    for response in embedded.responses:
        if response.request.resource_type == "document":
            policy = response.headers["content-security-policy"]
            assert f"frame-ancestors https://{installed.domain} {ADMIN}" in policy


def test_embedded_app_navigates_and_submits_a_form_with_session_tokens_only(
    installed, db, embedded, clock
):
    frame = embedded.open(installed.domain, "/app/")
    assert frame.locator("h1").inner_text() == "Home"
    frame = embedded.go(frame, "nav >> text=Settings", "/app/settings")

    clock.advance(minutes=10)  # the page's own token is long expired: the form must still go
    frame.fill("#email_from", "care@demo-store.com")
    frame.fill("#daily_message_cap", "3")
    frame.click("#settings-form button[type=submit]")
    frame.wait_for_selector("text=Settings saved.")

    with Session(db) as session:
        shop = session.get(Shop, installed.id)
        assert (shop.email_from, shop.daily_message_cap) == ("care@demo-store.com", 3)
    embedded.assert_no_cookies()
    # The redirect after the form carried no token: it went through the bounce page.
    assert any("/app/session-token-bounce" in url for url in embedded.requests)


def test_embedded_first_load_without_a_token_goes_through_the_bounce_page(installed, embedded):
    frame = embedded.open(installed.domain, "/app/orders", with_token=False)
    frame.wait_for_selector("#q")
    bounced = [url for url in embedded.requests if "/app/session-token-bounce" in url]
    assert len(bounced) == 1 and "shopify-reload=/app/orders?" in bounced[0]
    embedded.assert_no_cookies()


def test_the_admins_language_is_the_pages_language(installed, embedded):
    embedded.admin.locale = "es"
    frame = embedded.open(installed.domain, "/app/")
    assert frame.locator("h1").inner_text() == "Inicio"
    assert frame.locator("html").get_attribute("lang") == "es"
    embedded.admin.locale = "ru"
    frame = embedded.open(installed.domain, "/app/orders")
    assert frame.locator("h1").inner_text() == "Заказы"


@pytest.fixture
def shopify(settings):
    standin = ShopifyStandIn(valid_tokens=set())
    standin.client_credentials = (settings.shopify_api_key, settings.shopify_api_secret)
    with serve(standin) as base_url:
        standin.base_url = base_url
        yield standin


@pytest.fixture
def first_day_app(settings, shopify, db, clock):
    """An app whose Shopify is the stand-in (token exchange on first load)."""
    configured = dataclasses.replace(settings, shopify_url_template=shopify.base_url)
    rt = build_runtime(configured, engine=db, clock=clock)
    app = create_app(rt)
    with serve_wsgi(app) as base_url:
        yield rt, base_url


def test_a_merchants_first_day(first_day_app, browser, settings, clock, db):
    """Opened from the admin for the first time (install by token exchange),
    the merchant sets the sender, connects ShipBob (the webhook address shown
    once), sends a test message, and edits and previews a template."""
    rt, app_url = first_day_app
    shop = "fresh-store.myshopify.com"
    admin = AdminStandIn(
        secret=settings.shopify_api_secret, client_id=settings.shopify_api_key, clock=clock,
        app_origin=app_url,
    )  # fmt: skip
    with serve_wsgi(admin) as admin_url:
        tab = Embedded(browser, app_url, admin, admin_url)
        tab.context.set_default_timeout(10_000)
        try:
            frame = tab.open(shop, "/app/")
            assert frame.locator("h1").inner_text() == "Home"  # installed on the way

            frame = tab.go(frame, "nav >> text=Settings", "/app/settings")
            frame.fill("#email_from", "hello@fresh-store.com")
            frame.select_option("#timezone", "Europe/Madrid")
            frame.click("#settings-form button[type=submit]")
            frame.wait_for_selector("text=Settings saved.")

            frame.select_option("#provider-fulfillment", "shipbob")
            frame.fill("#secret-fulfillment", SHIPBOB_SECRET)
            frame.click(".provider-form:has(#provider-fulfillment) button[type=submit]")
            frame.wait_for_selector("#webhook-url")
            webhook_url = frame.locator("#webhook-url").inner_text()
            assert "/webhooks/fulfillment/shipbob?key=" in webhook_url

            frame.fill("#test-recipient", "owner@fresh-store.com")
            frame.click("#test-form button[type=submit]")
            frame.wait_for_selector("#test-sent")
            screenshot(tab.page, "first-day-settings")

            frame = tab.go(frame, "nav >> text=Templates", "/app/templates")
            frame = tab.go(frame, "text=shipping · email · en", "/app/templates/shipping/email/en")
            expect(frame.locator("#preview-subject")).not_to_be_empty()
            frame.fill("#subject", "{{ order_name }} is on its way from {{ shop_name }}!")
            expect(frame.locator("#preview-subject")).to_contain_text("#1042 is on its way")
            preview = frame.frame_locator("#preview-frame")
            expect(preview.locator("body")).to_contain_text("your order #1042 has shipped")
            frame.fill("#text", "Hello\n{{ order_name }\n")
            frame.wait_for_selector("#preview-problems li")
            assert "line 2" in frame.locator("#preview-problems").inner_text()
            frame.fill("#text", "Hello {{ customer_first_name }}, {{ order_name }} shipped.")
            frame.click("button[value=save]")
            frame.wait_for_selector("text=Template saved")
            screenshot(tab.page, "first-day-template")
            tab.assert_no_cookies()
        finally:
            tab.close()

    with Session(db) as session:
        row = session.exec(select(Shop).where(Shop.domain == shop)).one()
        assert row.email_from == "hello@fresh-store.com" and row.timezone == "Europe/Madrid"
        assert session.exec(select(ProviderConnection)).one().provider == "shipbob"
        saved = session.exec(select(TemplateOverride)).one()
        assert saved.subject.startswith("{{ order_name }} is on its way")
    assert worker.send_due(rt, from_settings(rt.settings)) == 1
    sent = list(Path(settings.instance_dir, "outbox", "email").glob("*.eml"))
    assert len(sent) == 1 and "owner@fresh-store.com" in sent[0].read_text()


def test_the_pages_work_by_keyboard_alone(installed, live_server, browser):
    """Sign in and reach the settings by keyboard: the skip link comes first,
    then the sections, every control reachable and labelled."""
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{live_server}/app/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")  # the brand link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(installed.token)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("h1").inner_text() == "Home"
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Settings":
            break
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("h1").inner_text() == "Settings"
    context.close()
