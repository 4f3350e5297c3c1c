"""Helpers for tests: constants, a frozen clock, fixtures on disk, and
Shopify's webhook headers."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.clock import Clock
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
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": shopify.sign(secret, body),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-22T11:59:59.123Z",
        "X-Shopify-API-Version": "2026-07",
    }


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
