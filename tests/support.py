"""Helpers for tests: constants, a frozen clock, fixtures on disk,
Shopify's webhook headers, and a shop's settings."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from app.clock import Clock
from app.models import Shop
from integrations import shopify

FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN_URL = os.environ.get("CARELOOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_SECRET = "shpss_test_client_secret_0123456789"  # 32+ bytes, as real ones
SHOP_DOMAIN = "demo-store.myshopify.com"
OTHER_SHOP_DOMAIN = "other-store.myshopify.com"
TWILIO_SID = "AC00000000000000000000000000000001"
TWILIO_TOKEN = "twilio-test-auth-token"
POSTMARK_HOOK_PASSWORD = "postmark-hook-password"

# Runs a test on the PostgreSQL database only (the `db` fixture is parametrized).
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class FrozenClock(Clock):
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def load_fixture(system: str, name: str) -> dict:
    return json.loads((FIXTURES / system / f"{name}.json").read_text())


def shopify_headers(
    topic: str,
    body: bytes,
    *,
    domain: str = SHOP_DOMAIN,
    webhook_id: str | None = None,
    event_id: str | None = None,
    secret: str = TEST_SECRET,
    triggered_at: str = "2026-11-22T11:59:59.123Z",  # just before the `clock` fixture's now
) -> dict[str, str]:
    """Headers as Shopify sends them. Against a server on the real clock, pass
    `triggered_at=now_header()`: older deliveries are refused as replays."""
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": shopify.sign(secret, body),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": triggered_at,
        "X-Shopify-API-Version": "2026-07",
    }


def for_shop(payload: dict, domain: str) -> dict:
    """A copy of a payload as Shopify would send it for the shop `domain`:
    the fields that name a shop name that one."""
    named = {key: domain for key in ("shop_domain", "myshopify_domain", "domain") if key in payload}
    url = payload.get("order_status_url")
    if isinstance(url, str):
        named["order_status_url"] = re.sub(r"^https://[^/]+", f"https://{domain}", url)
    return payload | named


def now_header() -> str:
    """The real time now as Shopify writes it in X-Shopify-Triggered-At."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def with_changes(payload: dict, **changes) -> dict:
    """A copy of a payload with some top-level fields changed."""
    return {**payload, **changes}


SHIPBOB_SECRET = "whsec_Y2FyZWxvb3Atc2hpcGJvYi10ZXN0LWsx"  # tests/fixtures/shipbob/README.md
AFTERSHIP_SECRET = "careloop-aftership-test-secret"
STANDARD_SECRET = "whsec_c3RhbmRhcmQtd2ViaG9va3MtdGVzdC1rZXktMDE="


def provider_fixture(system: str, name: str) -> tuple[dict[str, str], dict]:
    """(headers, body) of a provider fixture; see each folder's README."""
    fixture = load_fixture(system, name)
    return fixture["headers"], fixture["body"]


def set_shop(engine, shop_id: int, **values) -> None:
    """Change a shop's row, as a merchant's settings or an uninstall would."""
    with Session(engine) as session:
        shop = session.get(Shop, shop_id)
        for name, value in values.items():
            setattr(shop, name, value)
        session.add(shop)
        session.commit()


def sign_in(client, token: str) -> str:
    """Sign a Flask test client in to the standalone pages, as a person does
    (the login form, with an API token); returns the session's CSRF token."""
    page = client.get("/app/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/app/login", data={"csrf": csrf, "token": token}).status_code == 302
    page = client.get("/app/settings").get_data(as_text=True)  # a new session, a new token
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)
