"""The merchant pages in a real browser (Debian's headless Chromium, driven by
Playwright) against a real HTTP server on loopback."""

from __future__ import annotations

import os
import shutil

import pytest
from processes import serve_wsgi

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed (make test installs it)"
    if problem is None and not os.path.exists(CHROMIUM):
        problem = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (required under CI)")
        pytest.skip(problem)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app):
    with serve_wsgi(app) as base_url:
        yield base_url


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def follow(page, selector: str) -> None:
    """Click a link or a submit button and wait for the page it leads to:
    reading the page before it has loaded sees the old one, or nothing."""
    with page.expect_navigation():
        page.click(selector)


def sign_in(page, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/app/")
    page.fill("input[name=token]", token)
    follow(page, "button[type=submit]")


def test_merchant_signs_in_and_follows_an_order_to_its_timeline(
    shop, deliver, work, live_server, page
):
    for topic in ("orders/create", "orders/paid", "fulfillments/create", "fulfillments/update"):
        deliver(topic, topic.replace("/", "_"))
    work()

    sign_in(page, live_server, shop.token)
    assert page.locator("h1").inner_text() == "Orders"
    row = page.locator("tbody tr").first
    assert "#1001" in row.inner_text() and "in transit" in row.inner_text()

    follow(page, "text=#1001")
    assert page.locator("#order-state").inner_text() == "in transit"
    timeline = page.locator("#timeline tbody").inner_text()
    for change in ("new → pending", "pending → paid", "paid → fulfilled", "fulfilled → in transit"):
        assert change in timeline
    assert "Ana" in page.content() and "1Z999AA10123456784" in page.content()


def test_wrong_token_is_refused_and_pages_need_signing_in(shop, live_server, page):
    page.goto(f"{live_server}/app/orders")
    assert page.url.startswith(f"{live_server}/app/login")

    page.fill("input[name=token]", "clp_not-a-real-token")
    follow(page, "button[type=submit]")
    assert "not valid" in page.locator("[role=alert]").inner_text()


def test_a_shop_never_sees_another_shops_order(shop, other_shop, deliver, work, live_server, page):
    deliver("orders/create", "orders_create")  # to `shop` only
    work()
    sign_in(page, live_server, other_shop.token)
    assert "No orders yet" in page.content()

    response = page.goto(f"{live_server}/app/orders/5001001")
    assert response.status == 404


def test_order_filter_by_state_shows_only_that_state(shop, deliver, work, live_server, page):
    deliver("orders/create", "orders_create")
    work()
    sign_in(page, live_server, shop.token)
    follow(page, ".filters >> text=paid")
    assert "No orders are paid" in page.content()
    follow(page, ".filters >> text=pending")
    assert "#1001" in page.locator("tbody").inner_text()


def test_customer_rates_a_closed_ticket_from_the_email_stars_on_a_phone(
    shop, deliver, work, rt, db, settings, client, live_server, page
):
    from test_surveys import close_a_gorgias_ticket, rating_links

    deliver("customers/create", "customers_create")
    deliver("orders/create", "orders_create")
    work()
    close_a_gorgias_ticket(client, rt, shop)
    work()
    links = rating_links(rt, settings)  # the survey went out by email

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}{links[4]}")  # the fourth star
    assert page.locator("#r4").is_checked()
    assert survey_answer(db) == (None, None)  # opening the link recorded nothing
    follow(page, "button[type=submit]")
    assert "4" in page.locator("h1").inner_text()
    page.fill("textarea[name=comment]", "Quick and kind")
    follow(page, "button[type=submit]")
    assert page.locator("[role=status]").is_visible()
    assert survey_answer(db) == (4, "Quick and kind")


def survey_answer(db) -> tuple:
    from sqlmodel import Session, select

    from app.models import Survey

    with Session(db) as session:
        survey = session.exec(select(Survey)).one()
        return survey.rating, survey.comment


def test_merchant_connects_gorgias_and_what_the_page_shows_works(shop, client, live_server, page):
    import json
    from urllib.parse import urlsplit

    from support import load_fixture

    sign_in(page, live_server, shop.token)
    page.goto(f"{live_server}/app/helpdesk")
    follow(page, "text=Connect Gorgias")
    url = urlsplit(page.locator("#gorgias-url").inner_text())
    name, _, value = page.locator("#gorgias-header").inner_text().partition(": ")
    assert "{{ticket.updated_datetime}}" in page.locator("#gorgias-body").inner_text()
    body = json.dumps(load_fixture("gorgias", "ticket_created"))
    response = client.post(f"{url.path}?{url.query}", data=body,
                           headers={"Content-Type": "application/json", name: value})  # fmt: skip
    assert response.json == {"status": "stored"}
    page.goto(f"{live_server}/app/helpdesk")
    assert "gorgias" in page.locator(".card ul").inner_text()
