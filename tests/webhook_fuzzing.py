"""Signed, mutated webhook deliveries, and what they must never do.

Shared by tests/test_webhook_fuzz.py (a few dozen per entry, every run) and
bench/fuzz_webhooks.py (thousands, by hand). Each delivery starts from a
fixture of tests/fixtures/ and has one to three of its fields, at any depth,
replaced with a hostile value (wrong type, too long, NUL, CR/LF, ids past
64 bits, amounts past our NUMERIC, timestamps that leave year 9999 in UTC,
non-ASCII digits, an array nested 900 deep) or removed; it is signed as its
sender would sign it, so it reaches the inbox and the worker.

What must hold for every one (`Harness.attempt`): no 5xx at the door; a
stored delivery ends processed, parked, or dead with a PayloadError (a
readable reason, at once), never pending on an unexpected exception; and
another shop's good webhook, sent after it, is processed.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from flask.testing import FlaskClient
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import Session, select

from app import worker
from app.models import InboxMessage
from app.providers import connect
from app.runtime import Runtime
from integrations import aftership, shopify, standard_webhooks
from support import (
    AFTERSHIP_SECRET,
    FIXTURES,
    STANDARD_SECRET,
    for_shop,
    load_fixture,
    provider_fixture,
    shopify_headers,
)

# app/uninstalled and shop/redact act on the shop whatever their body says
# (and would end the run's shop); every other topic's body is read.
SHOPIFY_TOPICS = sorted(shopify.SUPPORTED_TOPICS - {"app/uninstalled", "shop/redact"})
SOURCES = ("shopify", "shipbob", "aftership", "standard")
# Stands for an array nested this deep, spliced in after json.dumps (whose
# own recursion would not get that far).
DEEP = "\ufdd0deep\ufdd0"
DEPTH = 900

_HOSTILE_TEXT = [
    "", " ", "x" * 65, "x" * 400, "#10\x0001", "ana@example.com\r\nBcc: all@example.com",
    "²", "١٢٣", "9223372036854775808", "1" * 30, "-1", "0", "1e20", "NaN",
    "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "2026-13-45T99:00:00Z",
    "2026-11-20", "gid://shopify/Order/1", DEEP,
]  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 10**30]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(_HOSTILE_TEXT),
    st.text(max_size=80),
)
HOSTILE = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=12), _SCALARS, max_size=3),
)


@dataclass(frozen=True)
class Delivery:
    source: str
    topic: str
    payload: dict

    def body(self) -> bytes:
        text = json.dumps(self.payload, ensure_ascii=False, separators=(",", ":"))
        deep = "[" * DEPTH + "]" * DEPTH
        return text.replace(json.dumps(DEEP, ensure_ascii=False), deep).encode()


def fixtures(source: str) -> list[tuple[str, dict]]:
    """(topic, body) of every fixture of a source."""
    if source == "shopify":
        return [(t, load_fixture("shopify", t.replace("/", "_"))) for t in SHOPIFY_TOPICS]
    found = []
    for path in sorted((FIXTURES / source).glob("*.json")):
        headers, body = provider_fixture(source, path.stem)
        topic = headers.get("x-webhook-topic") or headers.get("shipbob-topic") or body.get("event")
        found.append((topic or "shipment.updated", body))
    if source == "standard":
        found.append(("shipment.updated", STANDARD_EVENT))
    return found


STANDARD_EVENT = {
    "type": "shipment.updated",
    "timestamp": "2026-11-21T09:00:00Z",
    "data": {
        "shipment_id": "PKG-1",
        "order": {"shopify_id": 5001001, "name": "#1001"},
        "status": "in_transit",
        "detail": "Departed facility",
        "carrier": "DHL",
        "tracking_number": "JD0146000000001",
        "tracking_url": "https://example.com/t/JD0146000000001",
        "estimated_delivery_at": "2026-11-24T18:00:00+01:00",
    },
}


def _paths(node: object, path: tuple = ()) -> Iterator[tuple]:
    """Every place in a payload a value sits, at any depth."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*path, key)
        if isinstance(value, dict | list):
            yield from _paths(value, (*path, key))


@st.composite
def deliveries(draw, source: str) -> Delivery:
    topic, original = draw(st.sampled_from(fixtures(source)))
    payload = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(payload))
        if not paths:
            break
        *parents, key = draw(st.sampled_from(paths))
        parent = payload
        for step in parents:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.integers(0, 3)) == 0:
            del parent[key]
        else:
            parent[key] = draw(HOSTILE)
    return Delivery(source, topic, payload)


@dataclass(frozen=True)
class Verdict:
    status_code: int
    stored: str | None  # the delivery's row: status and last_error
    other_shop: str | None  # the good webhook's row status
    worker_raised: str | None = None

    @property
    def problem(self) -> str | None:
        """What went wrong, or None."""
        if self.worker_raised:
            return f"the worker raised {self.worker_raised}"
        if self.status_code >= 500:
            return f"answered {self.status_code}"
        if self.stored is not None and not (
            self.stored.startswith(("done", "parked"))
            or self.stored.startswith("dead PayloadError")
        ):
            return f"ended {self.stored}"
        if self.other_shop != "done":
            return f"the other shop's webhook ended {self.other_shop}"
        return None


class Harness:
    """Sends deliveries for one shop, then a good one for another shop, runs
    the worker, and says how each ended."""

    def __init__(self, client: FlaskClient, rt: Runtime, shop_id: int, other_domain: str):
        self.client, self.rt, self.shop_id, self.other_domain = client, rt, shop_id, other_domain
        self.urls = {}
        with Session(rt.engine) as session:
            # ShipBob's legacy style (no secret) takes every ShipBob topic
            # unsigned, so every ShipBob body reaches the parser.
            for provider, secret in (
                ("shipbob", None), ("aftership", AFTERSHIP_SECRET), ("standard", STANDARD_SECRET),
            ):  # fmt: skip
                issued = connect(session, rt.secrets, shop_id, provider, secret, rt.clock.now())
                self.urls[provider] = f"/webhooks/fulfillment/{provider}?key={issued.url_key}"
            session.commit()

    def attempt(self, delivery: Delivery) -> Verdict:
        with Session(self.rt.engine) as session:
            before = session.exec(select(func.coalesce(func.max(InboxMessage.id), 0))).one()
        status_code = self._post(delivery)
        good = json.dumps(for_shop(load_fixture("shopify", "orders_create"), self.other_domain))
        good = good.encode()
        self.client.post(
            "/webhooks/shopify",
            data=good,
            headers=shopify_headers("orders/create", good, domain=self.other_domain),
        )
        try:
            worker.drain(self.rt)
            raised = None
        except Exception as exc:  # the worker loop would meet it again at once
            raised = f"{type(exc).__name__}: {exc}"
        with Session(self.rt.engine) as session:
            rows = session.exec(select(InboxMessage).where(InboxMessage.id > before)).all()
        stored = [f"{r.status} {r.last_error or ''}" for r in rows if r.shop_id == self.shop_id]
        other = [r.status for r in rows if r.shop_id != self.shop_id]
        return Verdict(
            status_code, stored[0] if stored else None, other[0] if other else None, raised
        )

    def _post(self, delivery: Delivery) -> int:
        if delivery.source == "aftership" and isinstance(delivery.payload.get("event_id"), str):
            # AfterShip deliveries are deduplicated by event_id: a fresh one
            # for each, or all but the first would be answered "duplicate".
            event_id = f"{delivery.payload['event_id'][:90]}-{uuid.uuid4()}"
            delivery = replace(delivery, payload={**delivery.payload, "event_id": event_id})
        body = delivery.body()
        headers = {"Content-Type": "application/json"}
        if delivery.source == "shopify":
            headers = shopify_headers(delivery.topic, body)
            return self.client.post("/webhooks/shopify", data=body, headers=headers).status_code
        if delivery.source == "shipbob":
            headers["shipbob-topic"] = delivery.topic
        elif delivery.source == "aftership":
            headers["aftership-hmac-sha256"] = aftership.sign(AFTERSHIP_SECRET, body)
        else:
            message_id = f"msg_{uuid.uuid4().hex}"
            headers |= standard_webhooks.sign(STANDARD_SECRET, message_id, datetime.now(UTC), body)
        url = self.urls[delivery.source]
        return self.client.post(url, data=body, headers=headers).status_code
