"""The merchant pages over HTTP (Flask's client, both databases): sign-in in
both modes, the Content-Security-Policy per shop, forms refused across sites,
sign-in links, what each page shows, and the interface languages."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import jwt
import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from sqlmodel import Session, select

from app.cli import main
from app.models import ApiToken, InboxMessage, Order, Shipment, Shop
from app.orders import Cause, apply
from app.shops import install_shop
from app.web.pages.home import HEADLINES, Headline, home_headline
from app.web.render_slots import SLOTS
from integrations import shopify_bulk
from support import AFTERSHIP_SECRET, OTHER_SHOP_DOMAIN, set_shop, sign_in

ADMIN = "https://admin.shopify.com"
TRANSLATIONS = Path(__file__).parent.parent / "app" / "translations"


def session_token(settings, clock, shop: str, secret: str | None = None, **changes) -> str:
    now = int(clock.now().timestamp())
    claims = {
        "iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": settings.shopify_api_key,
        "sub": "42", "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": "j", "sid": "s",
    } | changes  # fmt: skip
    return jwt.encode(claims, secret or settings.shopify_api_secret, algorithm="HS256")


@pytest.fixture
def installed(shop, other_shop, db, rt):
    """Both shops as an install leaves them (an offline token: no exchange)."""
    for one in (shop, other_shop):
        set_shop(db, one.id, access_token_encrypted=rt.secrets.encrypt("shpat_installed"))
    return shop


def embedded_args(settings, clock, domain: str, **extra) -> dict[str, str]:
    token = session_token(settings, clock, domain)
    return {"embedded": "1", "shop": domain, "host": "aG9zdA", "id_token": token} | extra


def shop_row(db, shop_id: int) -> Shop:
    with Session(db) as session:
        return session.get(Shop, shop_id)


# --- embedded: session tokens, CSP ------------------------------------------------


@pytest.mark.parametrize("domain", ["demo-store.myshopify.com", OTHER_SHOP_DOMAIN])
def test_embedded_pages_may_be_framed_by_their_own_shops_admin_only(
    installed, client, settings, clock, domain
):
    response = client.get("/app/orders", query_string=embedded_args(settings, clock, domain))

    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert f"frame-ancestors https://{domain} {ADMIN}" in policy
    assert (
        "script-src 'self' 'nonce-" in policy
        and "cdn.shopify.com/shopifycloud/app-bridge.js" in policy
    )
    page = response.get_data(as_text=True)
    assert f'<meta name="shopify-api-key" content="{settings.shopify_api_key}">' in page
    assert page.index("app-bridge.js") < page.index("app.js")  # App Bridge first
    assert "Set-Cookie" not in response.headers


def test_standalone_pages_may_not_be_framed_and_load_no_app_bridge(installed, client):
    sign_in(client, installed.token)
    response = client.get("/app/orders")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "app-bridge.js" not in response.get_data(as_text=True)


def test_an_embedded_page_without_a_valid_token_goes_through_the_bounce_page(
    installed, client, settings, clock
):
    args = {"embedded": "1", "shop": installed.domain, "host": "aG9zdA", "locale": "es"}
    response = client.get("/app/orders", query_string=args | {"q": "ana"})
    assert response.status_code == 302
    bounce = client.get(response.headers["Location"])
    assert bounce.status_code == 200
    page = html.unescape(bounce.get_data(as_text=True))
    assert 'data-reload="/app/orders?embedded=1&shop=demo-store.myshopify.com' in page
    assert "q=ana" in page and "id_token" not in page.split("data-reload")[1].split('"')[1]
    assert (
        f"frame-ancestors https://{installed.domain} {ADMIN}"
        in (bounce.headers["Content-Security-Policy"])
    )


@pytest.mark.parametrize(
    "target", ["https://evil.example/app/", "//evil.example/app/", "/auth/install"]
)
def test_the_bounce_page_goes_back_only_to_our_own_pages(installed, client, target):
    response = client.get(
        "/app/session-token-bounce",
        query_string={"shop": installed.domain, "shopify-reload": target},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "token_of",
    [
        lambda s, c, d: session_token(s, c, d, exp=int(c.now().timestamp()) - 120),
        lambda s, c, d: session_token(s, c, d, secret="another-apps-secret-0123456789abcdef"),
        lambda s, c, d: "not-a-jwt",
        lambda s, c, d: "",
    ],
    ids=["expired", "forged", "garbage", "none"],
)
def test_an_embedded_form_without_a_valid_session_token_is_refused(
    installed, client, settings, clock, db, token_of
):
    """Cross-site requests in embedded mode: no other site can mint a session
    token, and without one nothing is changed."""
    args = {"embedded": "1", "shop": installed.domain, "host": "aG9zdA"}
    response = client.post(
        "/app/settings",
        query_string=args,
        data={"id_token": token_of(settings, clock, installed.domain), "daily_message_cap": "9"},
    )
    assert response.status_code == 401
    assert response.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert shop_row(db, installed.id).daily_message_cap == 4
    assert "Set-Cookie" not in response.headers


def test_an_embedded_form_with_a_session_token_is_saved_without_cookies(
    installed, client, settings, clock, db
):
    args = {"embedded": "1", "shop": installed.domain, "host": "aG9zdA", "locale": "en"}
    response = client.post(
        "/app/settings",
        query_string=args,
        data={
            "id_token": session_token(settings, clock, installed.domain),
            "daily_message_cap": "9",
        },
    )
    assert response.status_code == 302
    assert "embedded=1" in response.headers["Location"]  # comes back embedded (via the bounce)
    assert "Set-Cookie" not in response.headers
    assert shop_row(db, installed.id).daily_message_cap == 9


def test_a_fetch_authenticates_with_a_bearer_session_token(installed, client, settings, clock):
    token = session_token(settings, clock, installed.domain)
    response = client.post(
        "/app/templates/shipping/sms/en/preview",
        query_string={"embedded": "1", "shop": installed.domain},
        data={"text": "{{ shop_name }}: {{ order_name }} shipped"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200 and response.json["text"] == "demo-store: #1042 shipped"


def test_a_session_token_of_one_shop_never_shows_another(
    installed, other_shop, client, settings, clock, deliver, work
):
    deliver("orders/create", "orders_create")  # to demo-store only
    work()
    args = embedded_args(settings, clock, other_shop.domain)
    assert client.get("/app/orders/5001001", query_string=args).status_code == 404
    assert "#1001" not in client.get("/app/orders", query_string=args).get_data(as_text=True)


# --- standalone: cookie CSRF, sign-in links ------------------------------------------


def test_a_cross_site_standalone_form_is_refused(installed, client, db):
    sign_in(client, installed.token)
    response = client.post("/app/settings", data={"daily_message_cap": "9"})
    assert response.status_code == 400
    assert shop_row(db, installed.id).daily_message_cap == 4


def test_a_standalone_form_with_the_sessions_csrf_token_is_saved(installed, client, db):
    csrf = sign_in(client, installed.token)
    response = client.post(
        "/app/settings", data={"csrf": csrf, "daily_message_cap": "9", "email_from": ""}
    )
    assert response.status_code == 302
    assert shop_row(db, installed.id).daily_message_cap == 9


def test_bad_settings_are_shown_with_their_reason_and_change_nothing(installed, client, db):
    csrf = sign_in(client, installed.token)
    response = client.post(
        "/app/settings",
        data={
            "csrf": csrf,
            "daily_message_cap": "500",
            "timezone": "Mars/Olympus",
            "email_from": "x",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="daily_message_cap-error"' in page and "unknown time zone" in page
    row = shop_row(db, installed.id)
    assert (row.daily_message_cap, row.timezone, row.email_from) == (4, "UTC", None)


def test_quiet_hours_that_end_when_they_start_are_refused_on_the_page(installed, client, db):
    csrf = sign_in(client, installed.token)
    response = client.post("/app/settings", data={
        "csrf": csrf, "quiet_hours_start": "08:00", "quiet_hours_end": "08:00",
        "timezone": "Europe/Madrid",
    })  # fmt: skip
    assert response.status_code == 400
    assert 'id="quiet_hours_end-error"' in response.get_data(as_text=True)
    row = shop_row(db, installed.id)
    assert (row.quiet_hours_start, row.quiet_hours_end, row.timezone) == ("21:00", "08:00", "UTC")


def test_the_delay_settings_are_saved_from_the_settings_page(installed, client, db):
    csrf = sign_in(client, installed.token)
    response = client.post("/app/settings/delays", data={
        "csrf": csrf, "country": "ES", "processing_days": "3", "transit_days": "4",
        "holidays": "2026-12-25, 2027-01-06",
    })  # fmt: skip
    assert response.status_code == 302
    row = shop_row(db, installed.id)
    assert (row.country, row.processing_days, row.transit_days) == ("ES", 3, 4)
    assert row.holidays == "2026-12-25,2027-01-06"
    assert 'value="2026-12-25, 2027-01-06"' in client.get("/app/settings").get_data(as_text=True)


def test_bad_delay_settings_are_shown_with_their_reason_and_change_nothing(installed, client, db):
    csrf = sign_in(client, installed.token)
    response = client.post("/app/settings/delays", data={
        "csrf": csrf, "processing_days": "3", "not_shipped_grace_hours": "2",
        "holidays": "Christmas",
    })  # fmt: skip
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="not_shipped_grace_hours-error"' in page and 'id="holidays-error"' in page
    assert shop_row(db, installed.id).processing_days == 2


def test_transit_days_per_country_are_set_on_the_page(installed, client, db):
    csrf = sign_in(client, installed.token)
    response = client.post("/app/settings/delays", data={
        "csrf": csrf, "transit_days_by_country": "DE 3, fr: 4\nPT 6",
    })  # fmt: skip
    assert response.status_code == 302
    assert json.loads(shop_row(db, installed.id).transit_days_by_country) == {
        "DE": 3, "FR": 4, "PT": 6,
    }  # fmt: skip
    assert 'value="DE 3, FR 4, PT 6"' in client.get("/app/settings").get_data(as_text=True)
    api = client.get("/api/v1/settings/delays", headers=installed.auth).get_json()
    assert api["transit_days_by_country"] == {"DE": 3, "FR": 4, "PT": 6}


@pytest.mark.parametrize(("form", "field", "words"), [
    ({"transit_days_by_country": "Germany 3"}, "transit_days_by_country", "such as DE 3"),
    ({"transit_days_by_country": "XX 3"}, "transit_days_by_country", "not an ISO country code"),
    ({"transit_days_by_country": "DE 0"}, "transit_days_by_country", "at least 1"),
    ({"country": "ZZ"}, "country", "not an ISO country code"),
    ({"processing_days": "-1"}, "processing_days", "a whole number"),
    ({"not_shipped_grace_hours": "2"}, "not_shipped_grace_hours", "at least 24"),
    ({"stalled_days_home": "999"}, "stalled_days_home", "at most 60"),
])  # fmt: skip
def test_a_bad_delay_setting_is_told_in_plain_words(installed, client, db, form, field, words):
    csrf = sign_in(client, installed.token)
    response = client.post("/app/settings/delays", data={"csrf": csrf} | form)
    assert response.status_code == 400
    error = re.search(rf'id="{field}-error">([^<]+)<', response.get_data(as_text=True))
    assert error and words in html.unescape(error.group(1))
    assert "Input should" not in response.get_data(as_text=True)
    row = shop_row(db, installed.id)
    assert (row.country, row.transit_days_by_country in (None, "", "{}")) == ("US", True)


def _sign_in_link(client, csrf: str) -> str:
    response = client.post("/app/sign-in-links", data={"csrf": csrf, "hours": "24"})
    assert response.status_code == 201
    return re.search(r'id="new-link">([^<]+)<', response.get_data(as_text=True)).group(1)


def test_a_sign_in_link_signs_the_support_team_in_until_it_is_revoked(installed, app, clock):
    owner = app.test_client()
    csrf = sign_in(owner, installed.token)
    link = _sign_in_link(owner, csrf).removeprefix("http://127.0.0.1:8000")

    support = app.test_client()
    assert support.get(link).status_code == 200
    assert support.get("/app/orders").status_code == 302  # opening it signed no one in
    page = support.get(link)
    assert "demo-store" in page.get_data(as_text=True)
    support_csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert support.post(link, data={"csrf": support_csrf}).status_code == 302
    assert support.get("/app/orders").status_code == 200

    assert owner.post("/app/sign-in-links/revoke", data={"csrf": csrf}).status_code == 302
    assert app.test_client().get(link).status_code == 403
    clock.advance(seconds=1)
    fresh = _sign_in_link(owner, csrf).removeprefix("http://127.0.0.1:8000")
    assert app.test_client().get(fresh).status_code == 200  # links issued later work


def test_a_sign_in_link_expires_and_cannot_be_forged(installed, client, app, clock):
    csrf = sign_in(client, installed.token)
    link = _sign_in_link(client, csrf).removeprefix("http://127.0.0.1:8000")
    other = app.test_client()
    assert other.get(link[:-2] + ("AA" if not link.endswith("AA") else "BB")).status_code == 403
    clock.advance(hours=25)
    assert other.get(link).status_code == 403


def test_careloop_shops_link_prints_a_link_and_revokes_them(installed, runner, app):
    result = runner.invoke(main, ["shops", "link", installed.domain, "--hours", "2"])
    assert result.exit_code == 0, result.output
    link = result.output.strip().rsplit(" ", 1)[1].removeprefix("http://127.0.0.1:8000")
    assert app.test_client().get(link).status_code == 200
    assert runner.invoke(main, ["shops", "link", installed.domain, "--revoke"]).exit_code == 0
    assert app.test_client().get(link).status_code == 403
    assert runner.invoke(main, ["shops", "link", "nope.myshopify.com"]).exit_code != 0


def test_revoking_a_token_signs_out_the_page_sessions_it_opened(installed, client, app, db):
    csrf = sign_in(client, installed.token)
    issued = client.post("/app/api-tokens", data={"csrf": csrf}).get_data(as_text=True)
    second = re.search(r'id="new-token">(clp_[^<]+)<', issued).group(1)
    colleague = app.test_client()
    sign_in(colleague, second)
    with Session(db) as session:
        second_id = session.exec(select(ApiToken.id).order_by(ApiToken.id.desc())).first()

    assert (
        client.post(f"/app/api-tokens/{second_id}/revoke", data={"csrf": csrf}).status_code == 302
    )
    page = colleague.get("/app/rules")
    assert page.status_code == 302 and "/app/login" in page.headers["Location"]
    assert colleague.get("/app/orders").status_code == 302  # it stays signed out
    assert client.get("/app/rules").status_code == 200  # the other token's session goes on


def test_revoking_or_outliving_sign_in_links_signs_out_their_sessions(
    installed, client, app, clock
):
    csrf = sign_in(client, installed.token)
    support = app.test_client()
    link = _sign_in_link(client, csrf).removeprefix("http://127.0.0.1:8000")
    support_csrf = re.search(
        r'name="csrf" value="([^"]+)"', support.get(link).get_data(as_text=True)
    )
    assert support.post(link, data={"csrf": support_csrf.group(1)}).status_code == 302
    assert support.get("/app/orders").status_code == 200
    assert client.post("/app/sign-in-links/revoke", data={"csrf": csrf}).status_code == 302
    assert support.get("/app/orders").status_code == 302

    clock.advance(seconds=1)
    short = client.post("/app/sign-in-links", data={"csrf": csrf, "hours": "1"})
    link = re.search(r'id="new-link">([^<]+)<', short.get_data(as_text=True)).group(1)
    link = link.removeprefix("http://127.0.0.1:8000")
    support = app.test_client()
    support_csrf = re.search(
        r'name="csrf" value="([^"]+)"', support.get(link).get_data(as_text=True)
    )
    assert support.post(link, data={"csrf": support_csrf.group(1)}).status_code == 302
    clock.advance(minutes=59)
    assert support.get("/app/orders").status_code == 200
    clock.advance(minutes=2)
    assert support.get("/app/orders").status_code == 302  # the link's hour is over


def test_a_page_session_ends_a_day_after_sign_in(installed, client, clock):
    sign_in(client, installed.token)
    clock.advance(hours=23, minutes=59)
    assert client.get("/app/orders").status_code == 200
    clock.advance(minutes=2)
    assert client.get("/app/orders").status_code == 302


def test_an_uninstall_signs_out_sessions_for_good_even_after_a_reinstall(
    installed, client, app, clock, db
):
    sign_in(client, installed.token)
    away = app.test_client()  # signed in, and not back until after the reinstall
    sign_in(away, installed.token)
    with Session(db) as session:
        shop = session.get(Shop, installed.id)
        shop.uninstalled_at = clock.now()
        session.add(shop)
        session.commit()
    assert client.get("/app/orders").status_code == 302
    clock.advance(minutes=5)
    with Session(db) as session:
        install_shop(session, installed.domain, clock.now())
        session.commit()
    assert away.get("/app/orders").status_code == 302
    assert sign_in(away, installed.token)  # signing in again works


def test_a_session_cookie_that_names_only_a_shop_is_not_signed_in(installed, client):
    with client.session_transaction() as session:
        session["shop_id"] = installed.id  # what a session held before it named its credential
    assert client.get("/app/orders").status_code == 302


def test_api_tokens_are_issued_once_listed_and_revoked_one_by_one(installed, client, app, db):
    csrf = sign_in(client, installed.token)
    issued = client.post("/app/api-tokens", data={"csrf": csrf})
    new_token = re.search(r'id="new-token">(clp_[^<]+)<', issued.get_data(as_text=True)).group(1)
    api = app.test_client()
    assert (
        api.get("/api/v1/orders", headers={"Authorization": f"Bearer {new_token}"}).status_code
        == 200
    )
    assert new_token not in client.get("/app/api-tokens").get_data(as_text=True)  # shown once

    with Session(db) as session:
        newest = session.exec(select(ApiToken).order_by(ApiToken.id.desc())).first().id
    assert client.post(f"/app/api-tokens/{newest}/revoke", data={"csrf": csrf}).status_code == 302
    assert (
        api.get("/api/v1/orders", headers={"Authorization": f"Bearer {new_token}"}).status_code
        == 401
    )
    assert api.get("/api/v1/orders", headers=installed.auth).status_code == 200  # the other works
    assert client.post("/app/api-tokens/99999/revoke", data={"csrf": csrf}).status_code == 404


# --- what the pages show ----------------------------------------------------------------


@pytest.mark.parametrize("words", ["#1001", "1001", "ana", "GARCÍA", "ana@example", "612345678"])
def test_orders_are_found_by_number_name_email_or_phone(installed, client, deliver, work, words):
    deliver("orders/create", "orders_create")
    work()
    sign_in(client, installed.token)
    page = client.get("/app/orders", query_string={"q": words}).get_data(as_text=True)
    assert "#1001" in page and "Ana García" in page  # the customer column


def test_an_order_search_that_matches_nothing_says_so(installed, client, deliver, work):
    deliver("orders/create", "orders_create")
    work()
    sign_in(client, installed.token)
    page = client.get("/app/orders", query_string={"q": "zzz%_"}).get_data(as_text=True)
    assert "#1001" not in page and "No order matches" in page


def test_the_order_page_shows_items_messages_and_shop_times(installed, client, deliver, work, db):
    set_shop(db, installed.id, timezone="Europe/Madrid")
    for topic in ("orders/create", "fulfillments/create"):
        deliver(topic, topic.replace("/", "_"))
    work()
    sign_in(client, installed.token)
    page = html.unescape(client.get("/app/orders/5001001").get_data(as_text=True))

    items = page.split('id="line-items"')[1].split("</table>")[0]
    assert "Sérum Vitamina C" in items and "CL-SER-VC30" in items and "30 ml" in items
    messages = page.split('id="messages"')[1].split("</table>")[0]
    assert "shipping" in messages and "ana@example.com" in messages and "queued" in messages
    # Placed 2026-11-20T10:00+01:00: 10:00 in Madrid (09:00 UTC).
    assert re.search(r"11/20/26, 10:00\s?AM", page) and "Europe/Madrid" in page
    timeline = page.split('id="timeline"')[1]
    assert "Shopify: order placed" in timeline and "Shopify: parcel sent" in timeline
    assert "shopify:" not in timeline


def test_home_shows_orders_at_risk_dead_letters_and_todays_messages(
    installed, client, deliver, work, db, clock
):
    for topic in ("orders/create", "fulfillments/create"):
        deliver(topic, topic.replace("/", "_"))
    work()
    with Session(db) as session:
        order = session.exec(select(Order)).one()
        session.add(
            Shipment(
                shop_id=installed.id,
                order_id=order.id,
                source="shipbob",
                external_id="SB1",
                status="on_hold",
                status_detail="Address problem",
                source_updated_at=clock.now(),
                created_at=clock.now(),
            )
        )
        session.add(
            InboxMessage(
                shop_id=installed.id,
                source="shipbob",
                topic="order.shipped",
                delivery_id="d1",
                received_at=clock.now(),
                body="{}",
                status="dead",
                next_attempt_at=clock.now(),
            )
        )
        session.commit()
    sign_in(client, installed.token)
    page = html.unescape(client.get("/app/").get_data(as_text=True))

    at_risk = page.split('id="at-risk"')[1].split("</table>")[0]
    assert "#1001" in at_risk and "ShipBob: on hold, Address problem" in at_risk
    assert re.search(r'id="dead-webhooks">\s*<div class="figure">1<', page)
    assert "ShipBob:" in page.split('id="failing-providers"')[1].split("</ul>")[0]
    today = page.split('id="messages-today"')[1].split("</table>")[0]
    assert "shipping" in today and "queued" in today


def test_other_capabilities_put_their_headline_figures_on_home(installed, client):
    @home_headline
    def surveys(session, shop, now):
        return Headline(title="Satisfaction", figure="4.6 / 5", detail=shop.domain)

    try:
        sign_in(client, installed.token)
        page = client.get("/app/").get_data(as_text=True)
        assert "4.6 / 5" in page.split('id="headlines"')[1] and "demo-store" in page
    finally:
        HEADLINES.remove(surveys)


def test_a_provider_is_connected_with_its_webhook_address_shown_once(installed, client):
    csrf = sign_in(client, installed.token)
    response = client.post(
        "/app/settings/providers",
        data={
            "csrf": csrf,
            "kind": "fulfillment",
            "provider": "aftership",
            "secret": AFTERSHIP_SECRET,
        },
    )
    assert response.status_code == 201
    url = re.search(r'id="webhook-url">([^<]+)<', response.get_data(as_text=True)).group(1)
    assert "/webhooks/fulfillment/aftership?key=" in html.unescape(url)
    assert url not in client.get("/app/settings").get_data(as_text=True)
    refused = client.post(
        "/app/settings/providers",
        data={"csrf": csrf, "kind": "helpdesk", "provider": "shipbob", "secret": "x"},
    )
    assert refused.status_code == 400


def test_a_test_message_to_a_bad_address_is_refused(installed, client):
    csrf = sign_in(client, installed.token)
    response = client.post(
        "/app/settings/test-message", data={"csrf": csrf, "channel": "sms", "recipient": "12"}
    )
    assert response.status_code == 400 and "country code" in response.get_data(as_text=True)


def test_a_broken_template_is_not_saved_and_its_line_is_shown(installed, client):
    csrf = sign_in(client, installed.token)
    response = client.post(
        "/app/templates/shipping/sms/es",
        data={"csrf": csrf, "action": "save", "text": "Hola\n{{ order_name }\n"},
    )
    assert response.status_code == 422
    assert "line 2" in response.get_data(as_text=True)
    assert "yours" not in client.get("/app/templates").get_data(as_text=True)


def test_the_template_list_has_every_kind_channel_and_language(installed, client):
    sign_in(client, installed.token)
    page = client.get("/app/templates").get_data(as_text=True)
    for channel in ("email", "sms"):
        for language in ("en", "es", "ru"):
            assert f"/app/templates/shipping/{channel}/{language}" in page


# --- languages --------------------------------------------------------------------------


def test_the_login_page_follows_the_browsers_language(client):
    page = client.get("/app/login", headers={"Accept-Language": "ru,en;q=0.5"})
    assert "<h1>Войти</h1>" in page.get_data(as_text=True)


def test_standalone_pages_follow_the_shops_language(installed, client, db):
    set_shop(db, installed.id, locale="es")
    sign_in(client, installed.token)
    assert "<h1>Pedidos</h1>" in client.get("/app/orders").get_data(as_text=True)


def test_embedded_pages_follow_the_admins_language(installed, client, settings, clock):
    args = embedded_args(settings, clock, installed.domain, locale="ru-RU")
    assert "<h1>Заказы</h1>" in client.get("/app/orders", query_string=args).get_data(as_text=True)


@pytest.mark.parametrize("language", ["es", "ru"])
def test_every_page_string_is_translated_and_the_compiled_catalog_is_current(language):
    template = read_po((TRANSLATIONS / "messages.pot").open("rb"))
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    catalog = read_po((folder / "messages.po").open("rb"))
    compiled = read_mo((folder / "messages.mo").open("rb"))
    wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    have = {
        m.id if isinstance(m.id, str) else m.id[0]
        for m in catalog
        if m.id and all(_forms(m.string)) and len(_forms(m.string)) in (1, catalog.num_plurals)
    }
    assert wanted - have == set(), "untranslated (or a plural form missing): translate"
    for message in catalog:
        if message.id:
            assert _forms(compiled[message.id].string) == _forms(message.string), "make catalogs"


def _forms(string) -> list[str]:
    return [string] if isinstance(string, str) else list(string)


def test_the_template_catalog_holds_every_string_of_the_pages():
    """A string wrapped in a page but missing from messages.pot would never be
    translated: extract again and compare."""
    from babel.messages.extract import extract_from_dir

    root = Path(__file__).parent.parent
    method_map = [("app/web/**.py", "python"), ("templates/app/**.html", "jinja2")]
    found = {
        (m[2] if isinstance(m[2], str) else m[2][0])
        for m in extract_from_dir(
            root, method_map, keywords={"_": None, "gettext": None, "ngettext": (1, 2)}
        )
    }
    template = read_po((TRANSLATIONS / "messages.pot").open("rb"))
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    assert found - known == set(), "run `make translations`"


def test_a_sign_in_link_made_inside_the_admin_is_a_plain_standalone_link(
    installed, client, settings, clock, app
):
    response = client.post(
        "/app/sign-in-links",
        query_string={"embedded": "1", "shop": installed.domain, "host": "aG9zdA"},
        data={"id_token": session_token(settings, clock, installed.domain), "hours": "1"},
    )
    assert response.status_code == 201 and "Set-Cookie" not in response.headers
    link = re.search(r'id="new-link">([^<]+)<', response.get_data(as_text=True)).group(1)
    assert "embedded" not in link and "shop=" not in link
    assert app.test_client().get(link.removeprefix("http://127.0.0.1:8000")).status_code == 200


def test_line_items_stay_when_a_newer_snapshot_does_not_list_them(
    installed, client, deliver, work, db, clock
):
    """The bulk export (history import, reconciliation) carries no lines: a
    newer order from it must not erase the ones the webhook stored."""
    deliver("orders/create", "orders_create")
    work()
    record = {
        "id": "gid://shopify/Order/5001001", "name": "#1001", "createdAt": "2026-11-20T09:00:00Z",
        "updatedAt": "2026-11-21T09:00:00Z", "cancelledAt": None,
        "displayFinancialStatus": "PAID", "displayFulfillmentStatus": "UNFULFILLED",
        "currencyCode": "EUR", "totalPriceSet": {"shopMoney": {"amount": "83.85"}},
        "email": "ana@example.com", "phone": None, "customerLocale": "es", "customer": None,
        "fulfillments": [],
    }  # fmt: skip
    (snapshot,) = shopify_bulk.parse_record(record)
    assert snapshot.line_items is None
    with Session(db) as session:
        apply(session, installed.id, snapshot, Cause("shopify:bulk_import", None, clock.now()))
        session.commit()
    sign_in(client, installed.token)
    page = client.get("/app/orders/5001001").get_data(as_text=True)
    assert "paid" in page.split('id="order-state"')[1][:40]  # the newer snapshot applied
    assert "CL-SER-VC30" in page.split('id="line-items"')[1].split("</table>")[0]


def test_a_template_saved_while_the_shop_has_one_rendering_is_refused_as_a_page(installed, client):
    csrf = sign_in(client, installed.token)
    assert SLOTS.take(installed.id) is None  # this shop's one render slot, taken
    try:
        response = client.post(
            "/app/templates/shipping/sms/en", data={"csrf": csrf, "action": "save", "text": "Hi"}
        )
    finally:
        SLOTS.give_back(installed.id)
    assert response.status_code == 429 and response.mimetype == "text/html"
    assert "save again in a second" in response.get_data(as_text=True)
    assert "yours" not in client.get("/app/templates").get_data(as_text=True)


@pytest.mark.parametrize(("field", "value"), [
    ("tags", "y" * 61),  # longer than the API reads back
    ("tags", ",".join(f"t{n}" for n in range(16))),  # more of them
    ("shipping_methods", "Express delivery " * 4),
    ("countries", "ÄÖ"),  # upper-case letters, not an ISO code
    ("countries", "XX"),  # shaped like a code, and no country
    ("min_order_value", "NaN"),
    ("min_order_value", "sNaN"),
    ("min_order_value", "1.234"),  # the API takes cents at most
    ("min_order_value", "\u0661\u0662"),  # Arabic-Indic digits, which Decimal() reads
    ("min_order_value", "1_000"),
    ("min_order_value", "1e2"),
])  # fmt: skip
def test_the_rule_form_refuses_what_the_api_could_not_read_back(installed, client, field, value):
    csrf = sign_in(client, installed.token)
    listed = client.get("/api/v1/rules", headers=installed.auth).get_json()["rules"]
    rule = next(r for r in listed if r["trigger"] == "shipped")
    form = {"csrf": csrf, "name": "Shipped", "channels": "email,sms", "enabled": "on"}
    response = client.post(f"/app/rules/{rule['id']}", data=form | {field: value})
    assert response.status_code == 422
    assert field in response.get_data(as_text=True)
    after = client.get(f"/api/v1/rules/{rule['id']}", headers=installed.auth)
    assert after.status_code == 200 and after.get_json() == rule
