"""Property: Shopify's and the providers' events about one order, delivered in
any order and with duplicates, end in the same order state and shipment facts
as the in-order sequence (ShipBob and AfterShip both say deliveries can come
out of order and more than once)."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from app.demo import ANA, fulfillment_payload, order_payload
from app.models import Order, Shipment
from app.providers import connect
from integrations import aftership, standard_webhooks
from support import AFTERSHIP_SECRET, STANDARD_SECRET, provider_fixture

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_order_ids = itertools.count(7_000_000)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def story(order_id: int) -> list[tuple[str, str, dict]]:
    """(channel, topic, payload) in true time order."""
    tracking = f"1Z{order_id:016d}"
    fulfillment = order_id * 10

    def tracker(tag: str, minute: int, eta: str, event: str) -> dict:
        body = copy.deepcopy(provider_fixture("aftership", "tracking_in_transit")[1])
        body["event_id"] = f"{order_id}-{event}"
        body["msg"] |= {
            "id": f"as{order_id}", "order_id": str(order_id), "order_number": None,
            "tracking_number": tracking, "tag": tag, "updated_at": at(minute).isoformat(),
            "latest_estimated_delivery": {"datetime": eta},
        }  # fmt: skip
        return body

    def standard(status: str, minute: int) -> dict:
        return {
            "type": "shipment.updated",
            "timestamp": at(minute).isoformat(),
            "data": {
                "shipment_id": f"PKG-{order_id}",
                "order": {"shopify_id": order_id},
                "status": status,
                "tracking_number": f"JD{order_id}",
            },
        }

    def order(minute: int, financial: str, fulfillment_status=None) -> dict:
        return order_payload(
            order_id, 1001, ANA, T0, at(minute),
            financial_status=financial, fulfillment_status=fulfillment_status,
        )  # fmt: skip

    def shopify_fulfillment(minute: int, status) -> dict:
        payload = fulfillment_payload(fulfillment, order_id, at(2), at(minute), status)
        return payload | {"tracking_number": tracking}

    return [
        ("shopify", "orders/create", order(0, "pending")),
        ("shopify", "orders/paid", order(1, "paid")),
        ("shopify", "fulfillments/create", shopify_fulfillment(2, None)),
        ("shopify", "fulfillments/update", shopify_fulfillment(3, "in_transit")),
        ("aftership", "tracking_update", tracker("InTransit", 4, "2026-11-24", "a")),
        ("standard", "shipment.updated", standard("in_transit", 5)),
        ("aftership", "tracking_update", tracker("Exception", 6, "2026-11-26", "b")),
        ("standard", "shipment.updated", standard("out_for_delivery", 7)),
        ("shopify", "orders/partially_fulfilled", order(8, "paid", "partial")),
        # Two sources report the same parcel at the same minute and disagree:
        # the one further along wins, whichever arrives first.
        ("shopify", "fulfillments/update", shopify_fulfillment(9, "out_for_delivery")),
        ("aftership", "tracking_update", tracker("Delivered", 9, "2026-11-26", "c")),
        ("standard", "shipment.updated", standard("delivered", 10)),
        ("shopify", "orders/fulfilled", order(11, "paid", "fulfilled")),
    ]


def send(client, deliver, urls, channel: str, topic: str, payload: dict) -> None:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    if channel == "shopify":
        response = deliver(topic, payload)
    elif channel == "aftership":
        headers = {"aftership-hmac-sha256": aftership.sign(AFTERSHIP_SECRET, raw)}
        response = client.post(urls["aftership"], data=raw, headers=headers)
    else:
        message_id = f"msg_{payload['timestamp']}_{payload['data']['shipment_id']}"
        headers = standard_webhooks.sign(STANDARD_SECRET, message_id, datetime.now(UTC), raw)
        response = client.post(urls["standard"], data=raw, headers=headers)
    assert response.status_code == 200, response.json


def outcome(db, order_id: int):
    with Session(db) as session:
        order = session.exec(select(Order).where(Order.shopify_id == order_id)).one()
        parcels = session.exec(
            select(Shipment).where(Shipment.order_id == order.id).order_by(Shipment.source)
        ).all()
        return order.state, [
            (p.source, p.status, p.tracking_number and p.tracking_number.replace(str(order_id), ""),
             p.estimated_delivery_at)
            for p in parcels
        ]  # fmt: skip


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_interleaving_across_sources_ends_like_the_in_order_sequence(
    client, deliver, work, db, rt, shop, data
):
    with Session(rt.engine) as session:
        urls = {}
        for provider, secret in (("aftership", AFTERSHIP_SECRET), ("standard", STANDARD_SECRET)):
            issued = connect(session, rt.secrets, shop.id, provider, secret, rt.clock.now())
            urls[provider] = f"/webhooks/fulfillment/{provider}?key={issued.url_key}"
        session.commit()

    in_order_id, shuffled_id = next(_order_ids), next(_order_ids)
    for event in story(in_order_id):
        send(client, deliver, urls, *event)
        work()
    events = story(shuffled_id)
    disorderly = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events)))))
    for event in disorderly:
        send(client, deliver, urls, *event)
        if data.draw(st.booleans()):
            work()
    work()

    assert outcome(db, shuffled_id) == outcome(db, in_order_id)
    assert outcome(db, in_order_id)[0] == "delivered"
