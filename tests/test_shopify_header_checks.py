"""Shopify signs the body, not the headers: a signed body re-sent under another
topic or shop, a shop/redact for a shop still installed, or a delivery from
far outside Shopify's retry window is refused, and nothing is stored."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from app.models import InboxMessage, Shop
from support import OTHER_SHOP_DOMAIN, SHOP_DOMAIN, load_fixture, shopify_headers


def inbox_rows(db) -> list[InboxMessage]:
    with Session(db) as session:
        return list(session.exec(select(InboxMessage)).all())


def captured(name: str) -> bytes:
    """A body exactly as Shopify signed it for the demo shop."""
    return json.dumps(load_fixture("shopify", name)).encode()


def resend(client, topic: str, body: bytes, domain: str):
    """Re-send a captured body, its signature intact, under chosen headers."""
    return client.post(
        "/webhooks/shopify", data=body, headers=shopify_headers(topic, body, domain=domain)
    )


def test_captured_order_resent_as_another_shops_uninstall_is_refused(
    shop, other_shop, client, work, db
):
    response = resend(client, "app/uninstalled", captured("orders_create"), OTHER_SHOP_DOMAIN)
    work()

    assert response.status_code == 400
    assert response.json["error"]["code"] == "header_mismatch"
    assert inbox_rows(db) == []
    with Session(db) as session:
        assert session.get(Shop, other_shop.id).uninstalled_at is None


@pytest.mark.parametrize(
    ("fixture", "topic", "domain"),
    [
        # Another shop's own payloads, re-sent under this shop's domain.
        ("app_uninstalled", "app/uninstalled", OTHER_SHOP_DOMAIN),
        ("customers_redact", "customers/redact", OTHER_SHOP_DOMAIN),
        ("customers_data_request", "customers/data_request", OTHER_SHOP_DOMAIN),
        ("orders_paid", "orders/paid", OTHER_SHOP_DOMAIN),  # its order_status_url
        # The right shop, another resource than the topic says.
        ("orders_create", "customers/update", SHOP_DOMAIN),
        ("orders_create", "fulfillments/create", SHOP_DOMAIN),
        ("fulfillments_create", "orders/updated", SHOP_DOMAIN),
        ("customers_update", "orders/create", SHOP_DOMAIN),
        ("customers_update", "customers_marketing_consent/update", SHOP_DOMAIN),
        ("app_uninstalled", "customers/create", SHOP_DOMAIN),
        ("customers_redact", "customers/data_request", SHOP_DOMAIN),
        ("shop_redact", "customers/redact", SHOP_DOMAIN),
        ("bulk_operations_finish", "orders/updated", SHOP_DOMAIN),
        ("orders_create", "app/uninstalled", SHOP_DOMAIN),
    ],
)
def test_payload_that_contradicts_its_headers_is_refused(
    shop, other_shop, client, db, fixture, topic, domain
):
    response = resend(client, topic, captured(fixture), domain)

    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "header_mismatch"
    assert inbox_rows(db) == []


def test_shop_redact_for_a_shop_still_installed_is_refused(shop, deliver, work, db):
    response = deliver("shop/redact", "shop_redact")
    work()

    assert response.status_code == 409
    assert response.json["error"]["code"] == "shop_installed"
    assert inbox_rows(db) == []
    with Session(db) as session:
        assert session.get(Shop, shop.id) is not None


def test_shop_redact_after_the_uninstall_is_accepted(shop, deliver, work, db):
    deliver("app/uninstalled", "app_uninstalled")
    work()

    assert deliver("shop/redact", "shop_redact").status_code == 200


@pytest.mark.parametrize(
    ("triggered_at", "status"),
    [
        ("2026-11-19T11:00:00Z", 400),  # 3 days before the clock's now
        ("2026-11-20T12:30:00Z", 200),  # 47.5 hours: inside the old 48-hour schedule
        ("2026-11-22T12:04:00Z", 200),  # a clock 4 minutes ahead of ours
        ("2026-11-22T12:10:00Z", 400),  # 10 minutes in the future
        ("2027-11-22T12:00:00Z", 400),
    ],
)
def test_delivery_far_outside_shopifys_retry_window_is_refused(
    shop, client, db, triggered_at, status
):
    body = captured("orders_paid")
    headers = shopify_headers("orders/paid", body, triggered_at=triggered_at)

    response = client.post("/webhooks/shopify", data=body, headers=headers)

    assert response.status_code == status, response.json
    if status == 400:
        assert response.json["error"]["code"] == "stale_delivery"
    assert len(inbox_rows(db)) == (1 if status == 200 else 0)
