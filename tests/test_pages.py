"""The merchant pages in a real browser (Debian's headless Chromium, driven by
Playwright) against a real HTTP server on loopback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from browsing import follow
from processes import serve_wsgi
from sqlmodel import Session, select

from app.models import Notification, Rule, TemplateOverride
from notifications import outbox


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


def sign_in(page, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/app/orders")
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


def test_retention_page_shows_the_heatmap_churn_trend_and_split(db, shop, live_server, page):
    from datetime import UTC, date, datetime

    from test_retention import place, snapshot

    page.goto(f"{live_server}/app/login")
    sign_in(page, live_server, shop.token)
    page.goto(f"{live_server}/app/retention")
    assert "No retention snapshot yet" in page.locator("#no-snapshot").inner_text()

    for customer, day in ((1, 5), (2, 6), (3, 7), (4, 8)):
        place(db, shop.id, customer, datetime(2026, 1, day, 12, tzinfo=UTC))
    place(db, shop.id, 1, datetime(2026, 2, 3, 12, tzinfo=UTC))
    place(db, shop.id, 5, datetime(2026, 2, 9, 12, tzinfo=UTC))
    snapshot(db, shop.id, date(2026, 2, 28), window=30)
    snapshot(db, shop.id, date(2026, 3, 31), window=30)

    page.goto(f"{live_server}/app/retention")
    rows = page.locator("#heatmap tbody tr")
    assert rows.count() == 2
    # The triangle: January has offsets 0-2, February 0-1; numbers in the cells.
    january = rows.nth(0).locator("td")
    assert [january.nth(i).inner_text() for i in range(4)] == ["4", "100.0%", "25.0%", "0.0%"]
    assert january.nth(2).get_attribute("title") == "1 of 4 customers"
    assert rows.nth(1).locator("td").nth(3).inner_text() == ""
    churn = page.locator("#churn tbody tr")
    assert "4 (100.0%)" in churn.nth(0).inner_text()  # 30-day window: all gone by 31 March
    assert page.locator("#trend-churn_rate polyline").count() == 1
    assert page.locator("#trend-churn_rate circle").count() == 2
    assert "never rated" in page.locator("#split-rating").inner_text()
    assert "Period retention rate = ((E" in page.locator("#definitions").inner_text()

    assert page.goto(f"{live_server}/app/retention?period=year").status == 400


# --- the proactive rules' pages: the list's switches, a rule's form and
# preview, the words of a message, the notifications log ---------------------------


def rule_id(db, shop, trigger: str) -> int:
    with Session(db) as session:
        return session.exec(
            select(Rule.id).where(Rule.shop_id == shop.id, Rule.trigger == trigger)
        ).one()


def test_a_rule_is_switched_off_from_the_list(shop, db, live_server, page):
    sign_in(page, live_server, shop.token)
    follow(page, "nav >> text=Rules")
    row = f"#rule-{rule_id(db, shop, 'shipped')}"
    assert page.locator(f"{row} .switch").inner_text() == "On"
    follow(page, f"{row} .switch")
    assert page.locator(f"{row} .switch").inner_text() == "Off"
    with Session(db) as session:
        assert session.get(Rule, rule_id(db, shop, "shipped")).enabled is False


def test_a_rule_is_edited_refused_with_the_field_and_previewed(
    shop, deliver, work, clock, db, live_server, page
):
    deliver("orders/paid", "orders_paid")
    work()
    clock.advance(days=6)  # past the promise: the not-shipped rule has someone to tell
    sign_in(page, live_server, shop.token)
    page.goto(f"{live_server}/app/rules/{rule_id(db, shop, 'delay_not_shipped')}")
    preview = page.locator("#preview tbody").inner_text()
    assert "#1001" in preview and "ana@example.com" in preview and "not shipped" in preview

    page.fill("#countries", "Spain")
    follow(page, "#rule-form button[type=submit]")
    assert "countries" in page.locator("[role=alert]").inner_text()

    page.fill("#countries", "fr")
    page.select_option("#channels", "sms")
    follow(page, "#rule-form button[type=submit]")
    assert page.locator("#preview-empty").is_visible()  # the order ships to ES
    with Session(db) as session:
        rule = session.get(Rule, rule_id(db, shop, "delay_not_shipped"))
        assert (rule.countries, rule.channels) == ("FR", "sms")
        assert session.exec(select(Notification)).all() == []  # the preview sent nothing


def test_the_words_of_a_message_are_edited_in_the_sandbox(shop, db, live_server, page):
    sign_in(page, live_server, shop.token)
    page.goto(f"{live_server}/app/rules/{rule_id(db, shop, 'delay_stalled')}")
    follow(page, "text=sms es")
    assert "{{ shop_name }}" in page.locator("#text").input_value()  # ours to start from
    page.fill("#text", "{{ shop_name }}: {{ ''.__class__ }}")
    follow(page, "#template-form button[value=save]")
    assert page.locator("[role=alert]").is_visible()
    page.fill("#text", "{{ shop_name }}: tu pedido {{ order_name }} se retrasa.")
    follow(page, "#template-form button[value=save]")
    with Session(db) as session:
        [saved] = session.exec(select(TemplateOverride)).all()
    assert (saved.kind, saved.channel, saved.locale) == ("delay", "sms", "es")
    assert "se retrasa" in saved.text


def test_the_log_filters_and_a_dead_letter_is_retried(
    shop, deliver, work, clock, db, live_server, page
):
    deliver("orders/paid", "orders_paid")
    deliver("fulfillments/create", "fulfillments_create")
    work()
    with Session(db) as session:
        [message] = session.exec(select(Notification)).all()
        outbox.transition(session, message, outbox.DEAD, clock.now(), "gave up")
        session.commit()
    sign_in(page, live_server, shop.token)
    page.goto(f"{live_server}/app/notifications")
    page.select_option("select[name=kind]", "delay")
    follow(page, "#log-filters button")
    assert "No notifications match" in page.content()
    page.select_option("select[name=kind]", "shipping")
    page.select_option("select[name=status]", "dead")
    follow(page, "#log-filters button")
    assert "gave up" in page.locator("#log").inner_text()
    follow(page, "#log button")
    assert "retried by hand" in page.locator("#log").inner_text()
    with Session(db) as session:
        retried = session.exec(select(Notification)).one()
    assert (retried.status, retried.attempts) == ("queued", 0)
    assert retried.next_attempt_at <= clock.now() + timedelta(seconds=1)


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
