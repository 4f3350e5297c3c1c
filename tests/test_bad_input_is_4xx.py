"""Input that once ended in a 500 is answered 4xx and changes nothing: moments
outside years 1-9999, ids past 2^63 - 1, non-ASCII digits, NUL characters,
CR/LF in a redirect, an over-long setting; and a streamed body over the size
limit is 413 on every webhook route, not a signature failure."""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
import requests
from processes import child_env
from sqlmodel import Session, select
from test_e2e import start_server

from app.models import InboxMessage, Notification, ProviderConnection, Shop, TemplateOverride
from app.providers import connect
from integrations import aftership, standard_webhooks
from notifications.twilio import signature
from support import (
    AFTERSHIP_SECRET,
    ON_POSTGRESQL,
    POSTMARK_HOOK_PASSWORD,
    STANDARD_SECRET,
    TWILIO_TOKEN,
    load_fixture,
    now_header,
    provider_fixture,
    shopify_headers,
    sign_in,
)

# 9999-12-31 23:00 at UTC-5 is in year 10000 in UTC; 0001-01-01 00:00 at UTC+1
# is in year 0.
OUT_OF_RANGE = ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00"]
TOO_BIG_ID = str(2**63)


def inbox_rows(db) -> list[InboxMessage]:
    with Session(db) as session:
        return list(session.exec(select(InboxMessage)).all())


def connected(rt, shop, provider: str, secret: str | None) -> str:
    with Session(rt.engine) as session:
        issued = connect(session, rt.secrets, shop.id, provider, secret, rt.clock.now())
        session.commit()
    return f"/webhooks/fulfillment/{provider}?key={issued.url_key}"


def twilio_post(client, path: str, form: dict[str, str]):
    url = f"http://127.0.0.1:8000{path}"
    headers = {"X-Twilio-Signature": signature(TWILIO_TOKEN, url, form)}
    return client.post(path, data=form, headers=headers)


POSTMARK_AUTH = {
    "Authorization": "Basic "
    + base64.b64encode(f"postmark:{POSTMARK_HOOK_PASSWORD}".encode()).decode()
}


# --- moments out of range, parsed at the door ------------------------------------


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
def test_shopify_triggered_at_out_of_range_is_400(shop, client, db, moment):
    body = json.dumps(load_fixture("shopify", "orders_paid")).encode()
    headers = shopify_headers("orders/paid", body, triggered_at=moment)

    response = client.post("/webhooks/shopify", data=body, headers=headers)

    assert response.status_code == 400
    assert inbox_rows(db) == []


@pytest.mark.parametrize("field", ["timestamp", "shipped_at"])
@pytest.mark.parametrize("moment", OUT_OF_RANGE)
def test_standard_webhooks_moment_out_of_range_is_400(rt, shop, client, db, field, moment):
    url = connected(rt, shop, standard_webhooks.SOURCE, STANDARD_SECRET)
    payload = {
        "type": "shipment.updated",
        "timestamp": "2026-11-21T09:05:00Z",
        "data": {"shipment_id": "PKG-1", "order": {"shopify_id": 5001001}, "status": "shipped"},
    }
    if field == "timestamp":
        payload["timestamp"] = moment
    else:
        payload["data"]["shipped_at"] = moment
    raw = json.dumps(payload).encode()
    headers = standard_webhooks.sign(STANDARD_SECRET, f"msg_{uuid.uuid4().hex}",
                                     datetime.now(UTC), raw)  # fmt: skip

    response = client.post(url, data=raw, headers=headers | {"Content-Type": "application/json"})

    assert response.status_code == 400, response.json
    assert inbox_rows(db) == []


@pytest.mark.parametrize("ts", [2**62, -(2**62), 2**63 - 1, 253402300800])
def test_aftership_ts_out_of_range_is_400(rt, shop, client, db, ts):
    url = connected(rt, shop, aftership.SOURCE, AFTERSHIP_SECRET)
    body = provider_fixture("aftership", "tracking_in_transit")[1] | {"ts": ts}
    raw = json.dumps(body).encode()
    headers = {"aftership-hmac-sha256": aftership.sign(AFTERSHIP_SECRET, raw)}

    response = client.post(url, data=raw, headers=headers | {"Content-Type": "application/json"})

    assert response.status_code == 400, response.json
    assert inbox_rows(db) == []


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
def test_postmark_delivered_at_out_of_range_is_400(client, db, moment):
    report = load_fixture("postmark", "webhook_delivery") | {"DeliveredAt": moment}

    response = client.post("/webhooks/email/postmark", json=report, headers=POSTMARK_AUTH)

    assert response.status_code == 400


@pytest.mark.parametrize("field", ["MessageID", "Recipient"])
def test_postmark_report_with_a_nul_in_an_id_or_address_is_400(client, db, field):
    report = load_fixture("postmark", "webhook_delivery")
    report[field] += "\x00"

    response = client.post("/webhooks/email/postmark", json=report, headers=POSTMARK_AUTH)

    assert response.status_code == 400


# --- ids and cursors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"/api/v1/orders/{TOO_BIG_ID}"),
        ("get", "/api/v1/orders/99999999999999999999999"),
        ("post", f"/api/v1/inbox/{TOO_BIG_ID}/retry"),
    ],
)
def test_api_id_out_of_range_is_404(shop, client, method, path):
    response = getattr(client, method)(path, headers=shop.auth)

    assert response.status_code == 404


@pytest.fixture
def signed_in(shop, client):
    """The test client signed in to the shop's pages (through the login form)."""
    sign_in(client, shop.token)
    return client


def test_page_of_an_id_out_of_range_is_404(signed_in):
    assert signed_in.get(f"/app/orders/{TOO_BIG_ID}").status_code == 404


@pytest.mark.parametrize(
    "cursor",
    [TOO_BIG_ID, "99999999999999999999999", "%D9%A3", "%C2%B2", "-1", "1.5"],
)
def test_orders_cursor_that_is_no_id_is_400(signed_in, shop, client, cursor):
    assert signed_in.get(f"/app/orders?cursor={cursor}").status_code == 400
    api = client.get(f"/api/v1/orders?cursor={cursor}", headers=shop.auth)
    assert api.status_code == 400


# --- NUL characters, CR/LF, lengths ----------------------------------------------


def test_twilio_status_with_a_nul_in_message_sid_is_400(client, db):
    form = load_fixture("twilio", "status_callback_delivered")
    form = form | {"MessageSid": "SM\x00" + form["MessageSid"][3:], "SmsSid": "SM\x00"}

    response = twilio_post(client, "/webhooks/twilio/status", form)

    assert response.status_code == 400


def test_twilio_inbound_with_a_nul_in_to_is_400(shop, client, db):
    form = load_fixture("twilio", "inbound_stop") | {"To": "+1500555\x000006"}

    response = twilio_post(client, "/webhooks/twilio/inbound", form)

    assert response.status_code == 400


@pytest.mark.parametrize("secret", ["careloop-secret\x00", "careloop\r\nsecret", "x" * 1001])
def test_provider_secret_with_a_nul_or_line_break_is_400(shop, client, db, secret):
    response = client.put(
        "/api/v1/fulfillment-providers/aftership", json={"secret": secret}, headers=shop.auth
    )

    assert response.status_code == 400
    with Session(db) as session:
        assert session.exec(select(ProviderConnection)).all() == []


def test_deleting_a_provider_whose_name_has_a_nul_is_404(shop, client):
    response = client.delete("/api/v1/fulfillment-providers/ship%00bob", headers=shop.auth)

    assert response.status_code == 404


@pytest.mark.parametrize("part", ["subject", "html", "text"])
def test_template_with_a_nul_is_refused_with_its_reason(shop, client, db, part):
    source = {
        "subject": "Your order",
        "html": "<p>{{ order_name }}</p>",
        "text": "{{ order_name }}",
    }
    source[part] += "\x00"

    saved = client.put("/api/v1/templates/shipping/email/en", json=source, headers=shop.auth)
    preview = client.post(
        "/api/v1/templates/preview",
        json=source | {"kind": "shipping", "channel": "email", "locale": "en"},
        headers=shop.auth,
    )

    # Refused as every other template a shop may not use: 422, saying why.
    assert (saved.status_code, preview.status_code) == (422, 422)
    assert "NUL" in saved.text and "NUL" in preview.text
    with Session(db) as session:
        assert session.exec(select(TemplateOverride)).all() == []


@pytest.mark.parametrize("target", ["/app/orders\r\nSet-Cookie: a=b", "/app/x\ny", "/app/\x00"])
def test_login_next_with_control_characters_goes_to_the_home_page(shop, client, target):
    page = client.get("/app/login")
    token = re.search(rb'name="csrf" value="([^"]+)"', page.data).group(1).decode()

    response = client.post("/app/login", data={"csrf": token, "token": shop.token, "next": target})

    assert response.status_code == 302
    assert response.headers["Location"] == "/app/"


@pytest.mark.parametrize("sms_from", ["MG" + "0" * 60, "MG-not-a-service", "MG" + "g" * 32])
def test_sms_from_that_is_no_number_or_service_sid_is_400(shop, client, db, sms_from):
    response = client.patch(
        "/api/v1/settings/notifications", json={"sms_from": sms_from}, headers=shop.auth
    )

    assert response.status_code == 400
    with Session(db) as session:
        assert session.get(Shop, shop.id).sms_from is None


def test_sms_from_accepts_a_messaging_service_sid(shop, client):
    sid = "MG0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
    response = client.patch(
        "/api/v1/settings/notifications", json={"sms_from": sid}, headers=shop.auth
    )
    assert (response.status_code, response.json["sms_from"]) == (200, sid)


# --- a streamed body over the size limit ---------------------------------------------


def streamed(client, path: str, body: bytes, headers: dict[str, str]):
    """POST `body` as gunicorn hands a chunked request to the app: no
    Content-Length, and the input marked as terminated by the server."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers=headers | {"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_streamed_body_within_the_limit_is_read_whole(shop, client, db):
    body = json.dumps(load_fixture("shopify", "orders_paid")).encode()

    response = streamed(client, "/webhooks/shopify", body, shopify_headers("orders/paid", body))

    assert response.status_code == 200
    assert inbox_rows(db)[0].body.encode() == body


def test_signed_streamed_body_over_the_limit_is_413_on_every_webhook_route(
    rt, shop, client, db, settings
):
    pad = "x" * settings.webhook_max_bytes
    order = json.dumps(load_fixture("shopify", "orders_paid") | {"note": pad}).encode()
    tracking = provider_fixture("aftership", "tracking_in_transit")[1] | {"pad": pad}
    tracking = json.dumps(tracking).encode()
    twilio = load_fixture("twilio", "status_callback_delivered") | {"Pad": pad}
    twilio_body = urlencode(twilio).encode()
    twilio_url = "http://127.0.0.1:8000/webhooks/twilio/status"
    postmark = json.dumps(load_fixture("postmark", "webhook_delivery") | {"Pad": pad}).encode()

    answers = [
        streamed(client, "/webhooks/shopify", order, shopify_headers("orders/paid", order)),
        streamed(
            client,
            connected(rt, shop, aftership.SOURCE, AFTERSHIP_SECRET),
            tracking,
            {"aftership-hmac-sha256": aftership.sign(AFTERSHIP_SECRET, tracking)},
        ),
        streamed(
            client,
            "/webhooks/twilio/status",
            twilio_body,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature(TWILIO_TOKEN, twilio_url, twilio),
            },
        ),
        streamed(
            client,
            "/webhooks/email/postmark",
            postmark,
            POSTMARK_AUTH | {"Content-Type": "application/json"},
        ),
    ]

    assert [answer.status_code for answer in answers] == [413, 413, 413, 413]
    assert inbox_rows(db) == []
    with Session(db) as session:
        assert session.exec(select(Notification)).all() == []


@ON_POSTGRESQL
@pytest.mark.e2e
def test_streamed_body_over_the_limit_is_413_under_gunicorn(db, env, shop, processes):
    """What Shopify's sender would meet: a chunked request, under gunicorn."""
    production = child_env(
        env | {"CARELOOP_ENV": "production", "CARELOOP_WITHOUT_PROVIDER": "hold"}
    )
    base_url = start_server(processes, "serve", production, "--workers", "1")
    order = load_fixture("shopify", "orders_paid") | {"note": "x" * 2 * 1024 * 1024}
    body = json.dumps(order).encode()
    headers = shopify_headers("orders/paid", body, triggered_at=now_header())

    def chunks():  # a generator makes requests send Transfer-Encoding: chunked
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = requests.post(f"{base_url}/webhooks/shopify", data=chunks(), headers=headers,
                             timeout=30)  # fmt: skip

    assert response.status_code == 413
    assert inbox_rows(db) == []


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "GET"])
def test_a_rule_id_out_of_range_is_404_whatever_the_method(client, shop, method):
    response = client.open(
        f"/api/v1/rules/{TOO_BIG_ID}", method=method, headers=shop.auth, json={"name": "x"}
    )
    assert response.status_code == 404
