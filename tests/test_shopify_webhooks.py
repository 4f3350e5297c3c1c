"""Receiving Shopify webhooks: verify, store once, answer; bad input changes nothing."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from processes import WAIT_TIMEOUT
from sqlalchemy import event, text
from sqlmodel import Session, select

from app import inbox
from app.clock import Clock
from app.factory import create_app
from app.models import InboxMessage, Shop
from app.runtime import build_runtime
from integrations import shopify
from support import (
    ON_POSTGRESQL,
    SHOP_DOMAIN,
    for_shop,
    load_fixture,
    now_header,
    shopify_headers,
)


def inbox_rows(db) -> list[InboxMessage]:
    with Session(db) as session:
        return list(session.exec(select(InboxMessage).order_by(InboxMessage.id)).all())


def test_valid_delivery_is_stored_with_its_headers_and_answered_200(shop, deliver, db, clock):
    body = json.dumps(load_fixture("shopify", "orders_create")).encode()
    response = deliver("orders/create", body, webhook_id="wh-1", event_id="ev-1")

    assert response.status_code == 200
    assert response.json == {"status": "stored"}
    [row] = inbox_rows(db)
    assert (row.shop_id, row.source, row.topic) == (shop.id, "shopify", "orders/create")
    assert (row.delivery_id, row.event_id, row.api_version) == ("wh-1", "ev-1", "2026-07")
    assert row.triggered_at == datetime(2026, 11, 22, 11, 59, 59, 123000, tzinfo=UTC)
    assert row.received_at == clock.now()
    assert row.status == "pending"
    assert row.body.encode() == body  # the raw body, byte for byte


def test_every_supported_topic_has_a_fixture_that_is_accepted(shop, deliver, db, work):
    for topic in sorted(shopify.SUPPORTED_TOPICS):
        if topic == "shop/redact":
            work()  # Shopify sends it after app/uninstalled, to an uninstalled shop
        response = deliver(topic, topic.replace("/", "_"))
        assert response.status_code == 200, (topic, response.json)
    assert {row.topic for row in inbox_rows(db)} == shopify.SUPPORTED_TOPICS


def test_redelivery_with_the_same_webhook_id_is_stored_once(shop, deliver, db):
    first = deliver("orders/paid", "orders_paid", webhook_id="same", event_id="e1")
    again = deliver("orders/paid", "orders_paid", webhook_id="same", event_id="e1")

    assert (first.json, again.json) == ({"status": "stored"}, {"status": "duplicate"})
    assert len(inbox_rows(db)) == 1


def test_one_event_delivered_under_two_webhook_ids_is_stored_once(shop, deliver, db):
    deliver("orders/paid", "orders_paid", webhook_id="a", event_id="event-7")
    response = deliver("orders/paid", "orders_paid", webhook_id="b", event_id="event-7")

    assert response.json == {"status": "duplicate"}
    assert [row.delivery_id for row in inbox_rows(db)] == ["a"]


def test_same_event_id_on_another_topic_is_a_different_event(shop, deliver, db):
    deliver("orders/paid", "orders_paid", event_id="event-8")
    deliver("orders/updated", "orders_updated", event_id="event-8")
    assert len(inbox_rows(db)) == 2


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h | {"X-Shopify-Hmac-Sha256": "AAAA"}, b), id="wrong-signature"),
        pytest.param(
            lambda h, b: ({k: v for k, v in h.items() if "Hmac" not in k}, b), id="missing"
        ),
        pytest.param(lambda h, b: (h, b.replace(b"83.85", b"0.01")), id="tampered-body"),
        pytest.param(
            lambda h, b: (h | {"X-Shopify-Hmac-Sha256": shopify.sign("other-secret", b)}, b),
            id="other-secret",
        ),
    ],
)
def test_bad_signature_is_refused_401_and_nothing_is_stored(shop, client, db, tamper):
    body = json.dumps(load_fixture("shopify", "orders_create")).encode()
    headers, body = tamper(shopify_headers("orders/create", body), body)

    response = client.post("/webhooks/shopify", data=body, headers=headers)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_signature"
    assert inbox_rows(db) == []


def test_unknown_shop_is_refused_404(shop, deliver, db):
    response = deliver("orders/create", "orders_create", domain="stranger.myshopify.com")
    assert response.status_code == 404
    assert "stranger.myshopify.com" in response.json["error"]["message"]
    assert inbox_rows(db) == []


def test_uninstalled_shop_gets_410_except_for_compliance_topics(shop, deliver, db, clock):
    with Session(db) as session:
        row = session.get(Shop, shop.id)
        row.uninstalled_at = clock.now()
        session.add(row)
        session.commit()

    assert deliver("orders/create", "orders_create").status_code == 410
    for topic in sorted(shopify.COMPLIANCE_TOPICS):
        assert deliver(topic, topic.replace("/", "_")).status_code == 200
    assert sorted(r.topic for r in inbox_rows(db)) == sorted(shopify.COMPLIANCE_TOPICS)


def test_unsupported_topic_is_refused_422(shop, deliver, db):
    response = deliver("products/create", "unknown_topic")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "unsupported_topic"
    assert inbox_rows(db) == []


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2, 3]", b'"a string"', b"\xff\xfe{}", b""],
    ids=["broken", "array", "string", "not-utf8", "empty"],
)
def test_malformed_json_is_refused_400(shop, deliver, db, body):
    response = deliver("orders/create", body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "malformed_json"
    assert inbox_rows(db) == []


def test_body_over_the_size_limit_is_refused_413(shop, deliver, db, settings):
    payload = load_fixture("shopify", "orders_create") | {"note": "x" * settings.webhook_max_bytes}
    response = deliver("orders/create", payload)
    assert response.status_code == 413
    assert inbox_rows(db) == []


@pytest.mark.parametrize(
    "header", ["X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id"]
)
def test_missing_required_header_is_refused_400(shop, client, db, header):
    body = json.dumps(load_fixture("shopify", "orders_create")).encode()
    headers = shopify_headers("orders/create", body)
    del headers[header]
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 400
    assert header in response.json["error"]["message"]
    assert inbox_rows(db) == []


@pytest.mark.parametrize(
    "domain",
    ["demo-store.myshopify.com.evil.com", "evil.com", "x.myshopify.com/..", "-x.myshopify.com"],
)
def test_hostile_shop_domain_is_refused_400(shop, deliver, db, domain):
    response = deliver("orders/create", "orders_create", domain=domain)
    assert response.status_code == 400
    assert inbox_rows(db) == []


def test_unparseable_trigger_time_is_refused_400(shop, client, db):
    body = json.dumps(load_fixture("shopify", "orders_create")).encode()
    headers = shopify_headers("orders/create", body) | {"X-Shopify-Triggered-At": "yesterday"}
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 400
    assert inbox_rows(db) == []


def test_database_down_answers_503_so_shopify_retries(settings):
    from app.db import make_engine

    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    app = create_app(build_runtime(settings, engine=down, clock=Clock()))
    body = json.dumps(load_fixture("shopify", "orders_create")).encode()

    response = app.test_client().post(
        "/webhooks/shopify",
        data=body,
        headers=shopify_headers("orders/create", body, triggered_at=now_header()),
    )

    assert response.status_code == 503
    assert response.json["error"]["code"] == "storage_unavailable"


def test_shop_domain_header_is_matched_case_insensitively(shop, deliver, db):
    response = deliver("orders/create", "orders_create", domain=SHOP_DOMAIN.upper())
    assert response.status_code == 200
    assert len(inbox_rows(db)) == 1


def test_overlong_api_version_header_is_refused_400_not_a_storage_failure(shop, client, db):
    body = json.dumps(load_fixture("shopify", "orders_create")).encode()
    headers = shopify_headers("orders/create", body) | {"X-Shopify-API-Version": "2026-07" * 6}
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 400
    assert "X-Shopify-API-Version" in response.json["error"]["message"]
    assert inbox_rows(db) == []


def post_order(app, webhook_id: str, domain: str = SHOP_DOMAIN):
    """An orders/create delivery whose webhook and event ids are `webhook_id`."""
    body = json.dumps(for_shop(load_fixture("shopify", "orders_create"), domain)).encode()
    headers = shopify_headers("orders/create", body, domain=domain, webhook_id=webhook_id,
                              event_id=webhook_id)  # fmt: skip
    return app.test_client().post("/webhooks/shopify", data=body, headers=headers)


def send_while_the_first_waits(app, db, shop_id: int, followers: list[tuple[str, str]]):
    """POST `wh-first`, then, while its INSERT is held up, the followers (each
    a webhook id and a shop domain), at once from threads of their own.

    On PostgreSQL the shop row is locked, so that the first INSERT waits on its
    foreign key while the others arrive. Returns each webhook id's (status
    code, status or error code), and the deliveries each INSERT carried."""
    postgres = db.dialect.name == "postgresql"
    rows_per_insert: list[int] = []
    answers: dict[str, tuple[int, str]] = {}

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("INSERT INTO inbox"):
            rows_per_insert.append(statement.count("(%s") if postgres else 1)

    def send(webhook_id: str, domain: str) -> None:
        response = post_order(app, webhook_id, domain)
        answer = response.json.get("status") or response.json["error"]["code"]
        answers.setdefault(webhook_id, (response.status_code, answer))
        answers[f"{webhook_id} again"] = (response.status_code, answer)

    event.listen(db, "before_cursor_execute", count)
    try:
        with db.connect() as holder:
            if postgres:
                holder.execute(
                    text("SELECT id FROM shops WHERE id = :id FOR UPDATE"), {"id": shop_id}
                )
            first = threading.Thread(target=send, args=("wh-first", SHOP_DOMAIN))
            first.start()
            deadline = time.monotonic() + WAIT_TIMEOUT
            while postgres and not rows_per_insert and time.monotonic() < deadline:
                time.sleep(0.01)
            threads = [threading.Thread(target=send, args=follower) for follower in followers]
            for thread in threads:
                thread.start()
            if postgres:  # until every follower waits for the first INSERT
                writer = inbox._writers[db]
                deadline = time.monotonic() + WAIT_TIMEOUT
                while len(writer._waiting) < len(followers) and time.monotonic() < deadline:
                    time.sleep(0.01)
            holder.rollback()
        for thread in [first, *threads]:
            thread.join(timeout=WAIT_TIMEOUT)
    finally:
        event.remove(db, "before_cursor_execute", count)
    return answers, rows_per_insert


def test_concurrent_deliveries_share_a_statement_and_each_is_stored_once(app, shop, db):
    """On PostgreSQL the requests that arrive while a delivery is being
    written go together in the next statement (group commit)."""
    new = [(f"wh-{n}", SHOP_DOMAIN) for n in range(10)]
    followers = [*new, ("wh-3", SHOP_DOMAIN), ("wh-x", "stranger.myshopify.com")]

    answers, rows_per_insert = send_while_the_first_waits(app, db, shop.id, followers)

    assert answers["wh-first"] == (200, "stored")
    assert answers["wh-x"] == (404, "unknown_shop")
    # wh-3 was sent twice at once: one copy is stored, the other a duplicate.
    assert sorted([answers["wh-3"], answers["wh-3 again"]]) == [
        (200, "duplicate"), (200, "stored"),
    ]  # fmt: skip
    assert {answers[f"wh-{n}"] for n in range(10) if n != 3} == {(200, "stored")}
    stored = sorted(row.delivery_id for row in inbox_rows(db))
    assert stored == sorted(["wh-first", *(f"wh-{n}" for n in range(10))])
    if db.dialect.name == "postgresql":
        # The first alone; the ten and the stranger together; the repeat of
        # wh-3 in a statement of its own, after the one that held wh-3.
        assert rows_per_insert == [1, 11, 1]


@ON_POSTGRESQL
def test_a_shared_statement_that_fails_answers_503_to_all_in_it_and_stores_none(app, shop, db):
    # A trigger refuses one delivery, so the statement that carries it fails.
    with db.begin() as conn:
        conn.execute(text(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.delivery_id = 'wh-poison' THEN RAISE EXCEPTION 'poison'; END IF; "
            "RETURN NEW; END $$"
        ))  # fmt: skip
        conn.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON inbox "
                          "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"))  # fmt: skip
    try:
        followers = [(f"wh-{n}", SHOP_DOMAIN) for n in range(4)] + [("wh-poison", SHOP_DOMAIN)]
        answers, rows_per_insert = send_while_the_first_waits(app, db, shop.id, followers)
    finally:
        with db.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_poison ON inbox"))
            conn.execute(text("DROP FUNCTION refuse_poison()"))

    assert rows_per_insert == [1, 5]
    assert answers["wh-first"] == (200, "stored")
    assert {answers[f"wh-{n}"] for n in range(4)} == {(503, "storage_unavailable")}
    assert answers["wh-poison"] == (503, "storage_unavailable")
    assert [row.delivery_id for row in inbox_rows(db)] == ["wh-first"]
    # Shopify retries them; nothing was left half-done, and they are stored now.
    retried = [post_order(app, f"wh-{n}") for n in range(4)]
    assert [(r.status_code, r.json["status"]) for r in retried] == [(200, "stored")] * 4
    assert len(inbox_rows(db)) == 5
