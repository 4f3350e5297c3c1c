"""Uninstall and Shopify's mandatory privacy webhooks: redaction erases a
customer's (or the whole shop's) personal data everywhere we hold it."""

from __future__ import annotations

import json

from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from app import shop_jobs
from app.models import (
    Customer,
    DataRequest,
    InboxMessage,
    Order,
    Shop,
)
from app.shop_jobs import Every, ShopSchedule
from support import load_fixture

PII = ("ana@example.com", "+34612345678", "+34699887766", "García", "Alcalá")


def _story(deliver, work, domain=None):
    options = {"domain": domain} if domain else {}
    for topic in ("customers/create", "orders/create", "orders/paid", "fulfillments/create"):
        assert deliver(topic, topic.replace("/", "_"), **options).status_code == 200
    work()


def test_app_uninstalled_stops_the_shop_at_once(shop, deliver, work, db, client):
    deliver("app/uninstalled", "app_uninstalled")
    work()

    with Session(db) as session:
        assert session.get(Shop, shop.id).uninstalled_at is not None
    assert deliver("orders/create", "orders_create").status_code == 410
    assert client.get("/api/v1/orders", headers=shop.auth).status_code == 401


def test_customer_redaction_erases_their_data_everywhere(shop, deliver, work, db):
    _story(deliver, work)
    deliver("customers/data_request", "customers_data_request")
    work()
    deliver("customers/redact", "customers_redact")
    work()

    with Session(db) as session:
        customer = session.exec(select(Customer)).one()
        order = session.exec(select(Order)).one()
        bodies = session.exec(select(InboxMessage.body)).all()
        exports = session.exec(select(DataRequest.export)).all()
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == (None,) * 4
    assert customer.redacted_at is not None
    assert (order.email, order.phone) == (None, None)
    assert order.state == "fulfilled"  # the facts stay; only personal data goes
    for text in [*bodies, *exports]:
        assert not any(value in text for value in PII), text[:200]


def test_late_delivery_after_redaction_does_not_bring_the_data_back(shop, deliver, work, db):
    _story(deliver, work)
    deliver("customers/redact", "customers_redact")
    work()
    deliver("orders/updated", "orders_updated")  # a Shopify retry arriving afterwards
    deliver("customers/update", "customers_update")
    work()

    with Session(db) as session:
        customer = session.exec(select(Customer)).one()
        order = session.exec(select(Order)).one()
        bodies = session.exec(select(InboxMessage.body)).all()
    assert (customer.email, customer.phone, order.email, order.phone) == (None,) * 4
    assert not any(value in body for body in bodies for value in PII)


def test_customer_redaction_leaves_other_customers_alone(shop, deliver, work, db):
    _story(deliver, work)
    bob = load_fixture("shopify", "customers_create") | {
        "id": 7009999,
        "email": "bob@example.com",
        "phone": "+34600000000",
    }
    deliver("customers/create", bob)
    deliver("customers/redact", "customers_redact")
    work()

    with Session(db) as session:
        other = session.exec(select(Customer).where(Customer.shopify_id == 7009999)).one()
    assert (other.email, other.redacted_at) == ("bob@example.com", None)


def test_shop_redaction_deletes_everything_of_that_shop_only(
    shop, other_shop, deliver, work, db, clock
):
    _story(deliver, work)
    _story(deliver, work, domain=other_shop.domain)
    shop_jobs.enqueue_due(db, {"sweep": ShopSchedule(Every(minutes=5))}, clock.now())
    deliver("app/uninstalled", "app_uninstalled")
    work()
    deliver("shop/redact", "shop_redact")  # 48 hours after uninstall
    work()

    with Session(db) as session:
        for table in SQLModel.metadata.sorted_tables:
            if "shop_id" in table.c:
                shops = set(session.exec(select(table.c.shop_id)).all())
                assert shop.id not in shops, table.name
        assert session.get(Shop, shop.id) is None
        assert (
            session.exec(
                select(func.count()).select_from(Order).where(Order.shop_id == other_shop.id)
            ).one()
            == 1
        )


def test_data_request_records_an_export_of_what_we_hold(shop, deliver, work, db):
    _story(deliver, work)
    deliver("customers/data_request", "customers_data_request")
    work()

    with Session(db) as session:
        request = session.exec(select(DataRequest)).one()
    export = json.loads(request.export)
    assert export["customer"]["email"] == "ana@example.com"
    assert [o["shopify_id"] for o in export["orders"]] == [5001001]
    assert [s["external_id"] for s in export["shipments"]] == ["6001001"]
    assert (
        request.shopify_request_id
        == load_fixture("shopify", "customers_data_request")["data_request"]["id"]
    )
