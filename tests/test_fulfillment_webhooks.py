"""Fulfillment and tracking providers: ShipBob (both styles), AfterShip and the
generic Standard Webhooks format, through HTTP -> inbox -> worker -> database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from app import inbox as inbox_module
from app.cli import main as cli_main
from app.models import DelayEpisode, InboxMessage, Order, OrderEvent, ProviderConnection, Shipment
from app.providers import connect
from integrations import aftership, standard_webhooks
from support import (
    AFTERSHIP_SECRET,
    SHIPBOB_SECRET,
    STANDARD_SECRET,
    load_fixture,
    provider_fixture,
)

ORDER_ID = 5001001


@pytest.fixture
def connect_provider(rt, shop):
    """Connect a provider for a shop; returns the webhook path with its key."""

    def make(provider: str, secret: str | None = None, shop_id: int | None = None) -> str:
        with Session(rt.engine) as session:
            issued = connect(
                session, rt.secrets, shop_id or shop.id, provider, secret, rt.clock.now()
            )
            session.commit()
        return f"/webhooks/fulfillment/{provider}?key={issued.url_key}"

    return make


def compact(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def signed_headers(secret: str, body: bytes, *, message_id=None, moment=None) -> dict:
    moment = moment or datetime.now(UTC)
    return standard_webhooks.sign(secret, message_id or f"msg_{uuid.uuid4().hex}", moment, body)


def post_shipbob(client, url, name, *, secret=SHIPBOB_SECRET, body=None, **sign_options):
    headers, fixture_body = provider_fixture("shipbob", name)
    raw = compact(body if body is not None else fixture_body)
    topic = {k: v for k, v in headers.items() if k in ("x-webhook-topic", "shipbob-topic")}
    if "x-webhook-topic" in headers:
        topic |= signed_headers(secret, raw, **sign_options)
    return client.post(url, data=raw, headers={"Content-Type": "application/json", **topic})


def post_aftership(client, url, name_or_body, *, secret=AFTERSHIP_SECRET):
    body = name_or_body
    if isinstance(name_or_body, str):
        body = provider_fixture("aftership", name_or_body)[1]
    raw = compact(body)
    headers = {
        "Content-Type": "application/json",
        "aftership-hmac-sha256": aftership.sign(secret, raw),
    }
    return client.post(url, data=raw, headers=headers)


def post_standard(client, url, payload, *, secret=STANDARD_SECRET):
    raw = compact(payload)
    headers = {"Content-Type": "application/json", **signed_headers(secret, raw)}
    return client.post(url, data=raw, headers=headers)


def standard_event(status: str, at: str, **data) -> dict:
    return {
        "type": "shipment.updated",
        "timestamp": at,
        "data": {
            "shipment_id": "PKG-1",
            "order": {"shopify_id": ORDER_ID},
            "status": status,
            "carrier": "DHL",
            "tracking_number": "JD0146000000001",
            **data,
        },
    }


def inbox(db) -> list[InboxMessage]:
    with Session(db) as session:
        return list(session.exec(select(InboxMessage).order_by(InboxMessage.id)).all())


def order_state(db, shopify_id: int = ORDER_ID) -> str:
    with Session(db) as session:
        return session.exec(select(Order.state).where(Order.shopify_id == shopify_id)).one()


def shipments(db, source: str | None = None) -> list[Shipment]:
    with Session(db) as session:
        query = select(Shipment).order_by(Shipment.id)
        if source:
            query = query.where(Shipment.source == source)
        return list(session.exec(query).all())


# --- connections ------------------------------------------------------------


def test_connecting_a_provider_answers_its_webhook_url_once_and_keeps_the_secret_encrypted(
    client, shop, db
):
    response = client.put(
        "/api/v1/fulfillment-providers/shipbob", json={"secret": SHIPBOB_SECRET}, headers=shop.auth
    )
    assert response.status_code == 201
    assert response.json["webhook_url"].startswith(
        "http://127.0.0.1:8000/webhooks/fulfillment/shipbob?key="
    )
    assert response.json["signing_secret"] == "…" + SHIPBOB_SECRET[-4:]

    listing = client.get("/api/v1/fulfillment-providers", headers=shop.auth)
    assert [p["provider"] for p in listing.json["providers"]] == ["shipbob"]
    assert SHIPBOB_SECRET not in listing.get_data(as_text=True)
    assert "key=" not in listing.get_data(as_text=True)
    with Session(db) as session:
        row = session.exec(select(ProviderConnection)).one()
    assert SHIPBOB_SECRET not in row.secret_encrypted
    assert row.url_key_hash not in response.json["webhook_url"]


@pytest.mark.parametrize(
    ("provider", "body", "status", "message"),
    [
        # Not what the API describes: 400. Well-formed, but not a usable secret: 422.
        ("fedex", {"secret": "x"}, 400, "provider: Input should be 'shipbob'"),
        ("aftership", {"secret": 5}, 400, "secret: Input should be a valid string"),
        ("aftership", {}, 422, "signing secret"),
        ("aftership", {"secret": "short"}, 422, "at least 16"),
        ("shipbob", {"secret": "not-a-whsec"}, 422, "whsec_"),
        ("standard", {"secret": "whsec_!!!"}, 422, "base64"),
        ("standard", {"secret": "whsec_c2hvcnQ="}, 422, "24 bytes"),
    ],
)
def test_bad_provider_configuration_is_refused_and_changes_nothing(
    client, shop, db, provider, body, status, message
):
    response = client.put(f"/api/v1/fulfillment-providers/{provider}", json=body, headers=shop.auth)
    assert response.status_code == status
    assert message in response.json["error"]["message"]
    with Session(db) as session:
        assert session.exec(select(ProviderConnection)).all() == []


def test_disconnecting_a_provider_makes_its_url_stop_working(client, shop, connect_provider, db):
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    deleted = client.delete("/api/v1/fulfillment-providers/aftership", headers=shop.auth)
    assert deleted.status_code == 204
    assert post_aftership(client, url, "tracking_in_transit").status_code == 401
    assert (
        client.delete("/api/v1/fulfillment-providers/aftership", headers=shop.auth).status_code
        == 404
    )


def test_cli_connects_a_provider_and_lists_it_with_a_hint_only(runner, shop):
    from app.cli import main

    result = runner.invoke(
        main, ["providers", "connect", shop.domain, "aftership"],
        env={"CARELOOP_PROVIDER_SECRET": AFTERSHIP_SECRET},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "/webhooks/fulfillment/aftership?key=" in result.output
    assert AFTERSHIP_SECRET not in result.output

    listing = runner.invoke(main, ["providers", "list", shop.domain])
    assert listing.output.startswith("aftership\tsecret=…" + AFTERSHIP_SECRET[-4:])

    refused = runner.invoke(main, ["providers", "connect", shop.domain, "standard"])
    assert refused.exit_code != 0 and "signing secret" in refused.output


# --- ShipBob, dated API (Standard Webhooks) ----------------------------------


def test_shipbob_signed_event_updates_the_known_orders_shipment(
    client, shop, deliver, work, db, connect_provider
):
    deliver("orders/paid", "orders_paid")
    work()
    url = connect_provider("shipbob", SHIPBOB_SECRET)

    response = post_shipbob(client, url, "order_shipped")
    assert response.status_code == 200 and response.json == {"status": "stored"}
    post_shipbob(client, url, "order_shipment_tracking_updated")
    work()

    [parcel] = shipments(db, "shipbob")
    assert (parcel.external_id, parcel.status) == ("990001", "out_for_delivery")
    assert parcel.tracking_number == "1Z999AA10123456784"
    assert parcel.estimated_delivery_at == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    assert parcel.last_scan_at == datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
    assert parcel.promised_ship_at is not None
    assert order_state(db) == "out_for_delivery"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda h: {k: v for k, v in h.items() if not k.startswith("webhook-")}, id="unsigned"
        ),
        pytest.param(lambda h: h | {"webhook-signature": "v1,AAAA"}, id="wrong-signature"),
        pytest.param(lambda h: h | {"webhook-signature": "garbage"}, id="malformed-signature"),
        pytest.param(lambda h: h | {"webhook-id": "msg_other"}, id="id-swapped"),
    ],
)
def test_shipbob_delivery_with_a_bad_signature_is_refused_401(
    client, shop, db, connect_provider, tamper
):
    url = connect_provider("shipbob", SHIPBOB_SECRET)
    headers, body = provider_fixture("shipbob", "order_shipment_delivered")
    raw = compact(body)
    signed = {"x-webhook-topic": headers["x-webhook-topic"], **signed_headers(SHIPBOB_SECRET, raw)}

    response = client.post(url, data=raw, headers=tamper(signed))

    assert response.status_code == 401
    assert inbox(db) == []


def test_shipbob_replay_outside_the_tolerance_is_refused(client, shop, db, connect_provider):
    url = connect_provider("shipbob", SHIPBOB_SECRET)
    stale = datetime.now(UTC) - timedelta(minutes=10)
    assert post_shipbob(client, url, "order_shipped", moment=stale).status_code == 401
    assert inbox(db) == []


def test_shipbob_tampered_body_is_refused(client, shop, db, connect_provider):
    url = connect_provider("shipbob", SHIPBOB_SECRET)
    _headers, body = provider_fixture("shipbob", "order_shipped")
    raw = compact(body)
    signed = signed_headers(SHIPBOB_SECRET, raw)
    response = client.post(
        url,
        data=raw.replace(b"880001", b"880002"),
        headers={"x-webhook-topic": "order.shipped", **signed},
    )
    assert response.status_code == 401
    assert inbox(db) == []


def test_shipbob_key_rotation_accepts_either_signature_during_the_change(
    client, shop, db, connect_provider
):
    new_secret = "whsec_bmV3LWNhcmVsb29wLXNoaXBib2Ita2V5LTI="
    url = connect_provider("shipbob", new_secret)
    _headers, body = provider_fixture("shipbob", "order_shipped")
    raw = compact(body)
    old = signed_headers(SHIPBOB_SECRET, raw, message_id="msg_rot")
    new = signed_headers(new_secret, raw, message_id="msg_rot")
    both = old | {"webhook-signature": f"{old['webhook-signature']} {new['webhook-signature']}"}

    response = client.post(url, data=raw, headers={"x-webhook-topic": "order.shipped", **both})

    assert response.status_code == 200
    assert post_shipbob(client, url, "order_shipped", secret=SHIPBOB_SECRET).status_code == 401


def test_wrong_or_missing_key_is_refused_and_stores_nothing(client, shop, db, connect_provider):
    connect_provider("shipbob", SHIPBOB_SECRET)
    for url in ("/webhooks/fulfillment/shipbob?key=guess", "/webhooks/fulfillment/shipbob"):
        assert post_shipbob(client, url, "order_shipped").status_code == 401
    assert client.post("/webhooks/fulfillment/fedex?key=x", json={}).status_code == 404
    assert inbox(db) == []


def test_a_key_of_one_provider_does_not_open_another(client, shop, db, connect_provider):
    url = connect_provider("shipbob", SHIPBOB_SECRET).replace("/shipbob?", "/standard?")
    event = standard_event("in_transit", "2026-11-21T09:00:00Z")
    assert post_standard(client, url, event, secret=SHIPBOB_SECRET).status_code == 401


def test_shipbob_unsupported_topic_is_refused_422(client, shop, db, connect_provider):
    url = connect_provider("shipbob", SHIPBOB_SECRET)
    raw = compact({"id": 1})
    headers = {"x-webhook-topic": "return.created", **signed_headers(SHIPBOB_SECRET, raw)}
    assert client.post(url, data=raw, headers=headers).status_code == 422
    assert inbox(db) == []


def test_shipbob_signed_garbage_is_refused_400(client, shop, db, connect_provider):
    url = connect_provider("shipbob", SHIPBOB_SECRET)
    raw = b"{not json"
    headers = {"x-webhook-topic": "order.shipped", **signed_headers(SHIPBOB_SECRET, raw)}
    response = client.post(url, data=raw, headers=headers)
    assert response.status_code == 400
    assert inbox(db) == []


def test_shipbob_redelivery_with_the_same_webhook_id_is_stored_once(
    client, shop, db, connect_provider
):
    url = connect_provider("shipbob", SHIPBOB_SECRET)
    first = post_shipbob(client, url, "order_shipped", message_id="msg_same")
    again = post_shipbob(client, url, "order_shipped", message_id="msg_same")
    assert (first.json, again.json) == ({"status": "stored"}, {"status": "duplicate"})
    assert len(inbox(db)) == 1


# --- ShipBob, legacy style (unsigned; the URL key authenticates) -------------


@pytest.mark.parametrize(
    ("fixture", "status", "detail"),
    [
        ("legacy_shipment_onhold", "on_hold", "InvalidAddress"),
        ("legacy_shipment_exception", "exception", "OutOfStock"),
        ("legacy_shipment_cancelled", "cancelled", None),
        ("legacy_shipment_delivered", "delivered", None),
    ],
)
def test_shipbob_legacy_topics_become_shipment_facts(
    client, shop, deliver, work, db, connect_provider, fixture, status, detail
):
    deliver("orders/paid", "orders_paid")
    url = connect_provider("shipbob")
    assert post_shipbob(client, url, fixture).status_code == 200
    work()

    [parcel] = shipments(db, "shipbob")
    assert parcel.status == status
    assert (detail in (parcel.status_detail or "")) if detail else parcel.status_detail is None
    if status == "delivered":
        assert parcel.delivered_at == datetime(2026, 11, 27, 10, 20, tzinfo=UTC)


def test_shipbob_legacy_redelivery_is_stored_once(client, shop, db, connect_provider):
    url = connect_provider("shipbob")
    assert post_shipbob(client, url, "legacy_order_shipped").json == {"status": "stored"}
    assert post_shipbob(client, url, "legacy_order_shipped").json == {"status": "duplicate"}
    assert len(inbox(db)) == 1


def test_unsigned_legacy_delivery_is_refused_once_a_secret_is_configured(
    client, shop, db, connect_provider
):
    url = connect_provider("shipbob", SHIPBOB_SECRET)
    assert post_shipbob(client, url, "legacy_order_shipped").status_code == 401
    assert inbox(db) == []


def test_warehouse_hold_does_not_count_as_fulfilled(
    client, shop, deliver, work, db, connect_provider
):
    deliver("orders/paid", "orders_paid")
    url = connect_provider("shipbob")
    post_shipbob(client, url, "legacy_shipment_onhold")
    work()
    assert order_state(db) == "paid"


# --- AfterShip ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "status"),
    [
        ("tracking_info_received", "label_created"),
        ("tracking_in_transit", "in_transit"),
        ("tracking_out_for_delivery", "out_for_delivery"),
        ("tracking_attempt_fail", "attempted"),
        ("tracking_available_for_pickup", "available_for_pickup"),
        ("tracking_delivered", "delivered"),
        ("tracking_exception", "exception"),
        ("tracking_expired", "exception"),
    ],
)
def test_aftership_tags_become_shipment_statuses(
    client, shop, deliver, work, db, connect_provider, fixture, status
):
    deliver("orders/paid", "orders_paid")
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    assert post_aftership(client, url, fixture).status_code == 200
    work()
    [parcel] = shipments(db, "aftership")
    assert parcel.status == status
    assert parcel.tracking_number == "1Z999AA10123456784"


def test_aftership_bad_signature_is_refused_401(client, shop, db, connect_provider):
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    assert (
        post_aftership(client, url, "tracking_delivered", secret="wrong-secret-value!").status_code
        == 401
    )
    raw = compact(provider_fixture("aftership", "tracking_delivered")[1])
    assert (
        client.post(url, data=raw, headers={"Content-Type": "application/json"}).status_code == 401
    )
    assert inbox(db) == []


def test_aftership_redelivery_of_an_event_is_stored_once(client, shop, db, connect_provider):
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    assert post_aftership(client, url, "tracking_in_transit").json == {"status": "stored"}
    assert post_aftership(client, url, "tracking_in_transit").json == {"status": "duplicate"}


def test_revised_delivery_estimates_are_kept_on_the_timeline(
    client, shop, deliver, work, db, connect_provider
):
    deliver("orders/paid", "orders_paid")
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    for name in ("tracking_in_transit", "tracking_exception"):
        post_aftership(client, url, name)
    work()

    [parcel] = shipments(db, "aftership")
    assert parcel.estimated_delivery_at == datetime(2026, 11, 25, tzinfo=UTC)
    response = client.get(f"/api/v1/orders/{ORDER_ID}", headers=shop.auth)
    revisions = [(e["from"], e["to"]) for e in response.json["timeline"] if e["kind"] == "eta"]
    assert revisions == [("2026-11-24", "2026-11-25")]


def test_older_tracking_event_never_overwrites_newer_facts(
    client, shop, deliver, work, db, connect_provider
):
    deliver("orders/paid", "orders_paid")
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    post_aftership(client, url, "tracking_delivered")
    post_aftership(client, url, "tracking_in_transit")  # older, delivered late
    work()
    [parcel] = shipments(db, "aftership")
    assert parcel.status == "delivered"
    assert order_state(db) == "delivered"


# --- the generic Standard Webhooks provider -------------------------------------


def test_generic_provider_event_is_applied(client, shop, deliver, work, db, connect_provider):
    deliver("orders/paid", "orders_paid")
    url = connect_provider("standard", STANDARD_SECRET)
    event = standard_event(
        "in_transit", "2026-11-21T09:00:00Z",
        promised_ship_at="2026-11-21T18:00:00Z", estimated_delivery_at="2026-11-24T18:00:00Z",
    )  # fmt: skip
    assert post_standard(client, url, event).status_code == 200
    work()
    [parcel] = shipments(db, "standard")
    assert (parcel.external_id, parcel.status, parcel.carrier) == ("PKG-1", "in_transit", "DHL")
    assert parcel.estimated_delivery_at == datetime(2026, 11, 24, 18, tzinfo=UTC)
    assert order_state(db) == "in_transit"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["data"].update(status="teleported"), "data.status must be one of"),
        (lambda e: e["data"].update(order={}), "data.order needs shopify_id or name"),
        (lambda e: e["data"].pop("shipment_id"), "shipment_id is required"),
        (lambda e: e.update(timestamp="yesterday"), "timestamp is not an ISO 8601 timestamp"),
        (lambda e: e.pop("timestamp"), "timestamp is required"),
        (lambda e: e["data"].update(carrier="x" * 500), "carrier is longer"),
        (lambda e: e.update(type="parcel.teleported"), "is not handled"),
    ],
)
def test_generic_provider_bad_event_is_refused_with_the_reason(
    client, shop, db, connect_provider, change, message
):
    url = connect_provider("standard", STANDARD_SECRET)
    event = standard_event("in_transit", "2026-11-21T09:00:00Z")
    change(event)
    response = post_standard(client, url, event)
    assert response.status_code in (400, 422)
    assert message in response.json["error"]["message"]
    assert inbox(db) == []


# --- matching, parking, several sources -------------------------------------------


def test_event_for_an_unknown_order_is_parked_then_applied_when_the_order_arrives(
    client, shop, deliver, work, db, connect_provider
):
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    post_aftership(client, url, "tracking_in_transit")
    work()
    [message] = inbox(db)
    assert message.status == "parked"
    assert "order:5001001" in message.last_error

    deliver("orders/paid", "orders_paid")
    work()
    assert [m.status for m in inbox(db)] == ["done", "done"]
    assert order_state(db) == "in_transit"


def test_an_order_that_arrives_after_its_parcels_events_is_never_told_it_has_not_shipped(
    client, shop, deliver, work, db, connect_provider, clock
):
    clock.advance(days=5)  # past the order's promise
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    post_aftership(client, url, "tracking_in_transit")
    work()
    triggered = clock.now().isoformat().replace("+00:00", "Z")
    deliver("orders/paid", "orders_paid", triggered_at=triggered)  # wakes the parked event
    work()
    assert order_state(db) == "in_transit"
    with Session(db) as session:
        causes = session.exec(select(DelayEpisode.cause)).all()
        timeline = session.exec(select(OrderEvent.cause).where(OrderEvent.kind == "rule")).all()
    assert "not_shipped" not in causes, (causes, timeline)


def test_event_matched_by_tracking_number_is_woken_by_the_shopify_fulfillment(
    client, shop, deliver, work, db, connect_provider
):
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    body = provider_fixture("aftership", "tracking_delivered")[1]
    body["msg"] |= {"order_id": None, "order_number": None}  # only the tracking number
    post_aftership(client, url, body)
    deliver("orders/paid", "orders_paid")
    work()
    assert inbox(db)[0].status == "parked"  # the order is known, the parcel not yet

    deliver("fulfillments/create", "fulfillments_create")  # same tracking number
    work()
    assert inbox(db)[0].status == "done"
    assert order_state(db) == "delivered"


def test_parked_event_whose_order_never_comes_ends_in_the_dead_letters(
    client, shop, work, db, connect_provider, rt, clock
):

    url = connect_provider("aftership", AFTERSHIP_SECRET)
    post_aftership(client, url, "tracking_in_transit")
    work()
    clock.advance(days=15)
    requeued, given_up = inbox_module.recheck_parked(rt.engine, clock.now(), timedelta(days=14))
    assert (requeued, given_up) == (0, 1)
    assert inbox(db)[0].status == "dead"


def test_one_parcel_reported_by_shopify_and_a_tracker_counts_once(
    client, shop, deliver, work, db, connect_provider
):
    deliver("orders/fulfilled", "orders_fulfilled")  # two parcels, one in transit
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    post_aftership(client, url, "tracking_delivered")  # the same parcel, newer: delivered
    other = load_fixture("shopify", "fulfillments_update") | {
        "id": 6001002, "tracking_number": "1Z999AA10123456795",
        "shipment_status": "delivered", "updated_at": "2026-11-27T12:00:00+01:00",
    }  # fmt: skip
    deliver("fulfillments/update", other)
    work()
    assert order_state(db) == "delivered"


def test_timeline_shows_provider_events_by_source(
    client, shop, deliver, work, db, connect_provider
):
    deliver("orders/paid", "orders_paid")
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    post_aftership(client, url, "tracking_in_transit")
    work()
    response = client.get(f"/api/v1/orders/{ORDER_ID}", headers=shop.auth)
    shipment_events = [e for e in response.json["timeline"] if e["kind"] == "shipment"]
    assert shipment_events[0]["shipment"].startswith("aftership:")
    assert shipment_events[0]["cause"] == "aftership:tracking_update"
    with Session(db) as session:
        assert session.exec(select(OrderEvent).where(OrderEvent.kind == "state")).all()


def test_uninstalled_shop_gets_410_from_provider_webhooks(
    client, shop, deliver, work, db, connect_provider
):
    url = connect_provider("aftership", AFTERSHIP_SECRET)
    deliver("app/uninstalled", "app_uninstalled")
    work()
    assert post_aftership(client, url, "tracking_in_transit").status_code == 410


def test_shop_redaction_removes_provider_connections(
    client, shop, deliver, work, db, connect_provider
):
    connect_provider("aftership", AFTERSHIP_SECRET)
    deliver("app/uninstalled", "app_uninstalled")
    work()
    deliver("shop/redact", "shop_redact")  # 48 hours after uninstall
    work()
    with Session(db) as session:
        assert session.exec(select(ProviderConnection)).all() == []


def test_encryption_key_rotation_keeps_secrets_working(
    client, shop, db, connect_provider, runner, env, monkeypatch
):
    from cryptography.fernet import Fernet

    from app.cli import main

    url = connect_provider("aftership", AFTERSHIP_SECRET)
    old_key = env["CARELOOP_ENCRYPTION_KEYS"]
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("CARELOOP_ENCRYPTION_KEYS", f"{new_key},{old_key}")
    result = runner.invoke(main, ["secrets", "rotate"])
    assert result.exit_code == 0 and "re-encrypted 1 secret" in result.output

    # The old key can go: the secret opens with the new one alone.
    monkeypatch.setenv("CARELOOP_ENCRYPTION_KEYS", new_key)
    from app.config import Settings
    from app.factory import create_app
    from app.runtime import build_runtime

    rotated = create_app(build_runtime(Settings.from_env())).test_client()
    assert post_aftership(rotated, url, "tracking_in_transit").status_code == 200
    # A process still running with only the old key cannot read the secret: it
    # answers 503 (the provider retries) rather than accept or refuse for good.
    stale = post_aftership(client, url, "tracking_delivered")
    assert stale.status_code == 503
    assert stale.json["error"]["code"] == "secret_unreadable"


def test_rotation_without_the_old_key_fails_clearly(connect_provider, runner, monkeypatch):
    from cryptography.fernet import Fernet

    from app.cli import main

    connect_provider("aftership", AFTERSHIP_SECRET)
    monkeypatch.setenv("CARELOOP_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    result = runner.invoke(main, ["secrets", "rotate"])
    assert result.exit_code != 0
    assert "keep the old key" in result.output


# --- a poisoned delivery never stops the others -------------------------------------


def drain_at_most(rt, limit: int) -> list[InboxMessage]:
    """What the worker processes in `limit` claims: a row it could not settle
    would come back at the head of the queue and fill them all."""
    processed = []
    for _ in range(limit):
        message = inbox_module.process_next(rt.engine, rt.clock.now(), 8)
        if message is None:
            break
        processed.append(message)
    return processed


@pytest.mark.parametrize("provider", ["shipbob", "aftership"])
def test_poisoned_row_does_not_block_other_shops(
    provider, client, shop, other_shop, deliver, db, rt, connect_provider, runner
):
    # An event that names no order id, no order number and no tracking number:
    # it can be neither matched nor parked.
    url = connect_provider(provider, AFTERSHIP_SECRET if provider == "aftership" else None)
    if provider == "shipbob":
        body = provider_fixture("shipbob", "legacy_shipment_delivered")[1]
        body |= {"reference_id": None, "order_number": None}
        body["tracking"] |= {"tracking_number": None}
        assert post_shipbob(client, url, "legacy_shipment_delivered", body=body).status_code == 200
    else:
        body = provider_fixture("aftership", "tracking_in_transit")[1]
        body["msg"] |= {"order_id": None, "order_number": None, "tracking_number": None}
        assert post_aftership(client, url, body).status_code == 200
    for topic, name in [
        ("orders/paid", "orders_paid"),
        ("fulfillments/create", "fulfillments_create"),
    ]:
        assert deliver(topic, name, domain=other_shop.domain).status_code == 200

    assert len(drain_at_most(rt, 10)) == 3

    poisoned, *others = inbox(db)
    assert [m.status for m in others] == ["done", "done"]
    assert order_state(db) == "fulfilled"
    assert (poisoned.status, poisoned.attempts) == ("dead", 1)
    assert poisoned.last_error == (
        "PayloadError: the event names no order, shipment or tracking number"
    )
    # A dead letter, so the operator sees it and can retry it.
    listed = runner.invoke(cli_main, ["inbox", "list"])
    assert listed.output.startswith(f"{poisoned.id}\t")
    retried = runner.invoke(cli_main, ["inbox", "retry", str(poisoned.id)])
    assert "requeued 1 message(s)" in retried.output
