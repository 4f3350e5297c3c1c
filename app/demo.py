"""`careloop demo`: a small scripted store day, played against a running
service through HTTP with signed webhooks, exactly as Shopify would send them.

The script includes what real deliveries do: a duplicate, an event that
arrives late (older than what we already know), and a fulfillment that comes
before its order. Each later capability adds its scenes here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests

from integrations import aftership, shopify

DEMO_SHOP = "careloop-demo.myshopify.com"
API_VERSION = "2026-07"
REQUEST_TIMEOUT = 10


@dataclass(frozen=True)
class Person:
    id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    locale: str
    city: str
    country_code: str


ANA = Person(7001001, "Ana", "García", "ana@example.com", "+34612345678", "es", "Madrid", "ES")
BORIS = Person(
    7001002, "Boris", "Ivanov", "boris@example.com", "+79161234567", "ru", "Moscow", "RU"
)
JOHN = Person(7001003, "John", "Smith", "john@example.com", "+14155550123", "en", "Austin", "US")
LUCIA = Person(7001004, "Lucía", "Ruiz", "lucia@example.com", "+34622334455", "es", "Sevilla", "ES")
# How long the demo waits for the birthday sweep. The scheduler queues the
# sweep within a minute; rather than keep a newcomer (and the end-to-end
# test) waiting that long, the demo says where the greeting will show.
BIRTHDAY_WAIT_SECONDS = 10


def _ts(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def customer_payload(person: Person, created: datetime, updated: datetime) -> dict:
    return {
        "id": person.id,
        "email": person.email,
        "created_at": _ts(created),
        "updated_at": _ts(updated),
        "first_name": person.first_name,
        "last_name": person.last_name,
        "state": "enabled",
        "verified_email": True,
        "phone": person.phone,
        "currency": "EUR",
        "admin_graphql_api_id": f"gid://shopify/Customer/{person.id}",
        "default_address": {
            "customer_id": person.id,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "city": person.city,
            "country_code": person.country_code,
            "default": True,
        },
    }


def fulfillment_payload(
    fulfillment_id: int,
    order_id: int,
    created: datetime,
    updated: datetime,
    shipment_status: str | None,
    status: str = "success",
) -> dict:
    return {
        "id": fulfillment_id,
        "order_id": order_id,
        "status": status,
        "created_at": _ts(created),
        "updated_at": _ts(updated),
        "service": "manual",
        "tracking_company": "UPS",
        "tracking_number": f"1Z999AA1{fulfillment_id:010d}",
        "tracking_numbers": [f"1Z999AA1{fulfillment_id:010d}"],
        "tracking_url": f"https://www.ups.com/track?tracknum=1Z999AA1{fulfillment_id:010d}",
        "shipment_status": shipment_status,
        "name": f"#{order_id}.1",
        "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fulfillment_id}",
    }


def order_payload(
    order_id: int,
    number: int,
    person: Person,
    created: datetime,
    updated: datetime,
    *,
    financial_status: str = "paid",
    fulfillment_status: str | None = None,
    cancelled_at: datetime | None = None,
    fulfillments: list[dict] | None = None,
) -> dict:
    items = [
        ("Sérum Vitamina C", "CL-SER-VC30", "29.90", 1),
        ("Crema Solar SPF 30", "CL-SPF-30", "24.50", 2),
    ]
    line_items = [
        {
            "id": order_id * 10 + i,
            "title": title,
            "sku": sku,
            "price": price,
            "quantity": qty,
            "requires_shipping": True,
            "fulfillable_quantity": 0 if fulfillment_status == "fulfilled" else qty,
            "admin_graphql_api_id": f"gid://shopify/LineItem/{order_id * 10 + i}",
        }
        for i, (title, sku, price, qty) in enumerate(items)
    ]
    address = {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "address1": "Main street 1",
        "city": person.city,
        "country_code": person.country_code,
        "phone": person.phone,
    }
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{number}",
        "number": number - 1000,
        "order_number": number,
        "email": person.email,
        "contact_email": person.email,
        "phone": person.phone,
        "created_at": _ts(created),
        "processed_at": _ts(created),
        "updated_at": _ts(updated),
        "cancelled_at": _ts(cancelled_at) if cancelled_at else None,
        "cancel_reason": "customer" if cancelled_at else None,
        "currency": "EUR",
        "presentment_currency": "EUR",
        "total_price": "83.85",
        "subtotal_price": "78.90",
        "total_tax": "14.55",
        "financial_status": financial_status,
        "fulfillment_status": fulfillment_status,
        "customer_locale": person.locale,
        "buyer_accepts_marketing": True,
        "customer": customer_payload(person, created - timedelta(days=30), created),
        "line_items": line_items,
        "shipping_address": address,
        "billing_address": address,
        "shipping_lines": [{"title": "Standard", "price": "4.95", "code": "STANDARD"}],
        "fulfillments": fulfillments or [],
        "tags": "",
        "test": False,
    }


def aftership_payload(
    order_id: int,
    tracking: str,
    tag: str,
    updated: datetime,
    eta: str,
    note: str,
    scanned: datetime | None = None,
) -> dict:
    """An AfterShip tracking_update (webhook version 2026-07), trimmed to what
    we read; `scanned` is the last checkpoint's time when not `updated`."""
    return {
        "event": "tracking_update",
        "event_id": str(uuid.uuid4()),
        "is_tracking_first_tag": True,
        "ts": int(updated.timestamp()),
        "msg": {
            "id": f"as-{tracking}",
            "tracking_number": tracking,
            "slug": "ups",
            "tag": tag,
            "subtag_message": note,
            "order_id": str(order_id),
            "order_number": f"#{order_id - 5000000}",
            "updated_at": _ts(updated),
            "latest_estimated_delivery": {"type": "specific", "datetime": eta},
            "checkpoints": [
                {"checkpoint_time": _ts(scanned or updated), "tag": tag, "message": note}
            ],
        },
    }


def shipbob_hold_payload(order_id: int, shipment_id: int, updated: datetime) -> dict:
    """A ShipBob legacy `shipment_onhold` body: the Shipment resource."""
    return {
        "id": shipment_id,
        "order_id": shipment_id - 110000,
        "reference_id": str(order_id),
        "status": "OnHold",
        "status_details": [
            {"id": 3, "name": "InvalidAddress", "description": "Address could not be validated"}
        ],
        "created_date": _ts(updated - timedelta(minutes=5)),
        "last_update_at": _ts(updated),
        "estimated_fulfillment_date": _ts(updated + timedelta(days=1)),
        "tracking": None,
    }


@dataclass
class Delivery:
    topic: str
    payload: dict
    webhook_id: str
    note: str
    channel: str = "shopify"  # or a provider: "aftership", "shipbob"


@dataclass(frozen=True)
class ProviderLink:
    """A demo shop's connection: where to post and with which secret."""

    url: str
    secret: str | None


DAY = timedelta(days=1)


def store_day(start: datetime) -> list[Delivery]:
    """The scripted day, in the order the deliveries reach us."""
    t = start
    h = timedelta(hours=1)

    def delivery(topic: str, payload: dict, note: str, webhook_id: str | None = None) -> Delivery:
        return Delivery(topic, payload, webhook_id or str(uuid.uuid4()), note)

    paid_1001 = delivery(
        "orders/paid", order_payload(5001001, 1001, ANA, t, t + 0.1 * h), "order #1001 paid"
    )
    shipped = fulfillment_payload(6001001, 5001001, t + 2 * h, t + 2 * h, None)
    in_transit = fulfillment_payload(6001001, 5001001, t + 2 * h, t + 5 * h, "in_transit")
    delivered = fulfillment_payload(6001001, 5001001, t + 2 * h, t + 9 * h, "delivered")
    return [
        delivery("customers/create", customer_payload(ANA, t - 30 * h, t - 30 * h), "Ana signs up"),
        delivery(
            "customers_email_marketing_consent/update",
            {
                "customer_id": ANA.id,
                "email_address": ANA.email,
                "email_marketing_consent": {
                    "state": "subscribed",
                    "opt_in_level": "single_opt_in",
                    "consent_updated_at": _ts(t - 30 * h),
                },
            },
            "Ana subscribes to email marketing",
        ),
        delivery(
            "orders/create",
            order_payload(5001001, 1001, ANA, t, t, financial_status="pending"),
            "order #1001 placed",
        ),
        paid_1001,
        Delivery(
            paid_1001.topic,
            paid_1001.payload,
            paid_1001.webhook_id,
            "Shopify retries #1001 paid (duplicate delivery)",
        ),
        delivery(
            "orders/create", order_payload(5001002, 1002, BORIS, t + h, t + h), "order #1002 placed"
        ),
        delivery("fulfillments/create", shipped, "order #1001 shipped with UPS"),
        delivery(
            "orders/create",
            order_payload(5001001, 1001, ANA, t, t, financial_status="pending"),
            "a late, older #1001 update arrives (ignored)",
        ),
        delivery("fulfillments/update", in_transit, "#1001 in transit"),
        delivery(
            "fulfillments/update",
            fulfillment_payload(6001003, 5001003, t + 3 * h, t + 6 * h, "out_for_delivery"),
            "#1003's parcel is out for delivery before we ever saw #1003",
        ),
        delivery(
            "orders/create",
            order_payload(5001003, 1003, JOHN, t + 2 * h, t + 2 * h),
            "order #1003 arrives late",
        ),
        delivery(
            "orders/cancelled",
            order_payload(
                5001002,
                1002,
                BORIS,
                t + h,
                t + 7 * h,
                financial_status="refunded",
                cancelled_at=t + 7 * h,
            ),
            "Boris cancels #1002",
        ),
        delivery("fulfillments/update", delivered, "#1001 delivered"),
        delivery("orders/create", order_payload(5001004, 1004, ANA, t + 3 * h, t + 3 * h),
                 "order #1004 placed"),
        Delivery("shipment_onhold", shipbob_hold_payload(5001004, 990004, t + 4 * h),
                 "", "ShipBob holds #1004: the address does not validate", "shipbob"),
        Delivery(
            "tracking_update",
            aftership_payload(5001005, "1Z999AA10000000005", "InTransit", t + 5 * h,
                              (t + 30 * h).date().isoformat(), "Departure scan"),
            "", "AfterShip: #1005 in transit, before we know #1005 (parked)", "aftership",
        ),
        Delivery(
            "tracking_update",
            aftership_payload(5001005, "1Z999AA10000000005", "Exception", t + 8 * h,
                              (t + 54 * h).date().isoformat(), "Delayed (Extreme weather)"),
            "", "AfterShip: #1005 delayed by weather, delivery estimate revised", "aftership",
        ),
        delivery("orders/create", order_payload(5001005, 1005, BORIS, t + 4 * h, t + 4 * h),
                 "order #1005 arrives: its parked tracking events apply"),
        # Delays (the proactive rules): a week-old order that never shipped,
        # and a parcel without a carrier scan for nine days.
        delivery("orders/paid", order_payload(5001006, 1006, JOHN, t - 8 * DAY, t + 5 * h),
                 "order #1006, paid 8 days ago, has not shipped: late"),
        # #1007's tracking comes first (parked), as it would for an order
        # that shipped long ago: the order is never "not shipped".
        Delivery(
            "tracking_update",
            aftership_payload(5001007, "1Z999AA10000000007", "InTransit", t + 5 * h,
                              (t - 2 * DAY).date().isoformat(), "Arrived at facility",
                              scanned=t - 9 * DAY),
            "", "AfterShip: #1007's last scan was 9 days ago", "aftership",
        ),
        delivery("orders/paid", order_payload(5001007, 1007, BORIS, t - 12 * DAY, t + 6 * h),
                 "order #1007, placed 12 days ago, arrives: its parcel is stalled"),
        *birthday(t, delivery),
    ]  # fmt: skip


def birthday(t: datetime, delivery) -> list[Delivery]:
    """Lucía, born on this day (facts.birth_date), subscribed to email."""
    today = datetime.now(UTC).date()
    born = f"1996-{today:%m-%d}"  # 1996 had a 29 February
    customer = customer_payload(LUCIA, t - 40 * timedelta(hours=1), t) | {"metafields": [
        {"id": 7101004, "namespace": "facts", "key": "birth_date", "value": born, "type": "date"}
    ]}  # fmt: skip
    consent = {"customer_id": LUCIA.id, "email_address": LUCIA.email,
               "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in",
                                           "consent_updated_at": _ts(t)}}  # fmt: skip
    return [
        delivery("customers/create", customer, f"Lucía signs up: her birthday is today ({born})"),
        delivery("customers_email_marketing_consent/update", consent,
                 "Lucía subscribes to email marketing"),
    ]  # fmt: skip


EXPECTED_STATES = {
    5001001: "delivered",
    5001002: "cancelled",
    5001003: "out_for_delivery",
    5001004: "paid",
    5001005: "delivery_exception",
    5001006: "paid",
    5001007: "in_transit",
}
# The orders whose delays the demo shows: what each produced.
DELAY_SCENES = {
    5001005: "a delivery exception",
    5001006: "a late order (not shipped)",
    5001007: "a stalled parcel",
}


class SignaturesRefused(Exception):
    """The server answered 401 to a webhook the demo signed: it holds other
    secrets than the demo read."""


def play(
    base_url: str,
    api_secret: str,
    api_token: str,
    providers: dict[str, ProviderLink],
    echo: Callable[[str], None],
    wait_seconds: float = 30.0,
    outbox_dir: str = "instance/outbox",
) -> bool:
    """Send the day's webhooks, wait for the worker, print the outcome.
    Returns whether every order reached its expected state."""
    base_url = base_url.rstrip("/")
    session = requests.Session()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)
    for delivery in store_day(start):
        body = json.dumps(delivery.payload).encode()
        if delivery.channel == "shopify":
            url, headers = (
                f"{base_url}/webhooks/shopify",
                _shopify_headers(delivery, body, api_secret),
            )
        else:
            link = providers[delivery.channel]
            url, headers = link.url, _provider_headers(delivery, body, link.secret)
        response = session.post(
            url, data=body, headers={"Content-Type": "application/json", **headers},
            timeout=REQUEST_TIMEOUT,
        )  # fmt: skip
        outcome = response.json().get("status") if response.ok else response.text.strip()
        echo(f"  {response.status_code} {outcome:<10} {delivery.topic:<42} {delivery.note}")
        if response.status_code == 401 and delivery.channel == "shopify":
            # Every other delivery would be refused the same way.
            raise SignaturesRefused(base_url)

    auth = {"Authorization": f"Bearer {api_token}"}
    deadline = time.monotonic() + wait_seconds
    states: dict[int, str] = {}
    while time.monotonic() < deadline:
        states = {
            order_id: _state(session, base_url, order_id, auth) for order_id in EXPECTED_STATES
        }
        if states == EXPECTED_STATES:
            break
        time.sleep(0.3)
    echo("")
    for order_id, expected in EXPECTED_STATES.items():
        mark = "ok" if states.get(order_id) == expected else f"expected {expected}"
        echo(f"  order {order_id}: {states.get(order_id)}  ({mark})")
    echo("")
    echo("Messages to customers:")
    for message in _notifications(session, base_url, auth, deadline):
        echo(f"  {message['kind']:<9} {message['channel']:<6} {message['locale']:<3} "
             f"{message['recipient']:<22} {message['status']}")  # fmt: skip
    echo("")
    echo("Delays the rules found, and what each produced:")
    for order_id, scene in DELAY_SCENES.items():
        document = _document(session, base_url, order_id, auth) or {}
        found = ", ".join(_delay_line(d) for d in document.get("delays", []))
        messages = ", ".join(
            f"{m['kind']}/{m['channel']} {m['status']}" for m in document.get("messages", [])
        )
        echo(f"  #{order_id - 5000000} {scene}: {found or 'nothing found'}; "
             f"messages: {messages or 'none'}")  # fmt: skip
    echo(_birthday_line(session, base_url, auth))
    echo("")
    echo("Look at the result:")
    echo(f"  open {base_url}/app/ and sign in with the API token {api_token}")
    echo(f"  curl -H 'Authorization: Bearer {api_token}' {base_url}/api/v1/orders/5001001")
    echo(f"  curl -H 'Authorization: Bearer {api_token}' {base_url}/api/v1/orders")
    echo(f"  curl -H 'Authorization: Bearer {api_token}' {base_url}/api/v1/notifications")
    echo(f"  curl -H 'Authorization: Bearer {api_token}' {base_url}/api/v1/rules")
    echo(f"  curl {base_url}/metrics")
    echo(f"  the messages themselves: {outbox_dir}/ (email as .eml, SMS in sms.log),")
    echo("  unless SMTP_HOST / POSTMARK_SERVER_TOKEN / TWILIO_ACCOUNT_SID are configured")
    return states == EXPECTED_STATES


def _shopify_headers(delivery: Delivery, body: bytes, api_secret: str) -> dict[str, str]:
    return {
        "X-Shopify-Topic": delivery.topic,
        "X-Shopify-Hmac-Sha256": shopify.sign(api_secret, body),
        "X-Shopify-Shop-Domain": DEMO_SHOP,
        "X-Shopify-Webhook-Id": delivery.webhook_id,
        "X-Shopify-Event-Id": delivery.webhook_id,
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        "X-Shopify-API-Version": API_VERSION,
    }


def _provider_headers(delivery: Delivery, body: bytes, secret: str | None) -> dict[str, str]:
    if delivery.channel == "aftership":
        return {"aftership-hmac-sha256": aftership.sign(secret or "", body)}
    return {"shipbob-topic": delivery.topic}  # ShipBob's legacy style: the URL key authenticates


def _notifications(session: requests.Session, base_url: str, auth: dict, deadline: float):
    """The shop's notifications once the worker has sent what it could."""
    while True:
        response = session.get(f"{base_url}/api/v1/notifications", headers=auth,
                               timeout=REQUEST_TIMEOUT)  # fmt: skip
        messages = response.json()["notifications"] if response.ok else []
        if time.monotonic() > deadline or all(
            m["status"] not in ("queued", "sending") for m in messages
        ):
            return list(reversed(messages))
        time.sleep(0.3)


def _birthday_line(session: requests.Session, base_url: str, auth: dict) -> str:
    """What Lucía's birthday produced: the greeting once the birthday sweep
    (every 15 minutes, at the shop's greeting hour, 09:00 by default) has
    run, or when it will."""
    deadline = time.monotonic() + BIRTHDAY_WAIT_SECONDS
    if datetime.now(UTC).hour < 9:  # the demo shop's zone is UTC
        return ("Lucía's birthday: her greeting is due at 09:00 (the shop's hour, in its time "
                "zone); the birthday sweep sends it then")  # fmt: skip
    while time.monotonic() < deadline:
        for message in _notifications(session, base_url, auth, deadline):
            if message["kind"] == "birthday" and message["status"] != "queued":
                return (f"Lucía's birthday: {message['channel']} to {message['recipient']}, "
                        f"{message['status']}")  # fmt: skip
        time.sleep(1)
    return ("Lucía's birthday: not sent yet; the birthday sweep (every 15 minutes) queues it "
            "shortly: see /api/v1/notifications")  # fmt: skip


def _document(session: requests.Session, base_url: str, order_id: int, auth: dict) -> dict | None:
    response = session.get(
        f"{base_url}/api/v1/orders/{order_id}", headers=auth, timeout=REQUEST_TIMEOUT
    )
    return response.json() if response.ok else None


def _state(session: requests.Session, base_url: str, order_id: int, auth: dict) -> str | None:
    document = _document(session, base_url, order_id, auth)
    return document["state"] if document else None


def _delay_line(delay: dict) -> str:
    """A delay as the demo prints it: told (the message left), or on its way."""
    if delay["told_at"]:
        return f"{delay['cause']} (told by {delay['told_channel']})"
    if delay["told_channel"]:
        return f"{delay['cause']} ({delay['told_channel']} on its way)"
    return delay["cause"]
