"""Log lines: JSON in production, readable text in development, each with
the shop, the request or job id and the webhook or message id where known."""

from __future__ import annotations

import json
import logging
import re

import pytest
from sqlalchemy import select
from sqlmodel import Session

from app.clock import Clock
from app.config import ROOT, Settings
from app.db import make_engine
from app.factory import create_app
from app.logs import configure_logging
from app.models import InboxMessage
from app.runtime import build_runtime
from support import SHOP_DOMAIN, load_fixture, now_header, shopify_headers

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"


@pytest.fixture
def logging_restored():
    """configure_logging replaces the root handlers; put pytest's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_failed_webhook_is_one_json_line_with_shop_request_and_webhook_ids(
    settings, capsys, logging_restored
):
    configure_logging("INFO", json_lines=True)
    down = build_runtime(settings, engine=make_engine(UNREACHABLE), clock=Clock())
    body = json.dumps(load_fixture("shopify", "orders_create")).encode()
    headers = shopify_headers("orders/create", body, webhook_id="wh-123", triggered_at=now_header())
    response = (
        create_app(down)
        .test_client()
        .post("/webhooks/shopify", data=body, headers=headers | {"X-Request-Id": "req-9"})
    )
    assert response.status_code == 503

    [line] = [e for e in json_lines(capsys.readouterr().err) if e["level"] == "ERROR"]
    assert "could not store" in line["message"]
    assert (line["shop"], line["request_id"], line["webhook_id"]) == (
        SHOP_DOMAIN,
        "req-9",
        "wh-123",
    )


def test_a_failing_inbox_message_logs_its_shop_and_ids(
    shop, deliver, work, db, capsys, logging_restored
):
    configure_logging("INFO", json_lines=True)
    payload = load_fixture("shopify", "orders_create") | {"id": "not an id"}
    deliver("orders/create", payload, webhook_id="wh-bad")
    work()

    with Session(db) as session:
        message_id = session.exec(select(InboxMessage.id)).one()[0]
    # A payload that can never be read is dead-lettered at once: a warning.
    [line] = [e for e in json_lines(capsys.readouterr().err) if e["level"] == "WARNING"]
    assert "dead-lettered" in line["message"]
    assert (line["shop_id"], line["inbox_id"], line["webhook_id"]) == (
        shop.id,
        message_id,
        "wh-bad",
    )


def test_development_logs_are_readable_text_with_the_context(
    shop, deliver, work, capsys, logging_restored
):
    configure_logging("INFO")
    deliver("orders/create", load_fixture("shopify", "orders_create") | {"id": "x"})
    work()

    err = capsys.readouterr().err
    assert json_lines(err) == []
    line = (
        r" WARNING app\.inbox: inbox \d+ \(shopify orders/create\) dead-lettered: PayloadError"
        r" shop_id=(\d+) "
    )
    assert [int(found) for found in re.findall(line, err)] == [shop.id], err


@pytest.mark.skipif((ROOT / ".env").exists(), reason="a developer's .env is in the way")
def test_dotenv_is_read_in_development_only(monkeypatch, tmp_path):
    for name in ("CARELOOP_PUBLIC_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    required = {
        "CARELOOP_SECRET_KEY": "k" * 40,
        "CARELOOP_ENCRYPTION_KEYS": "LW5lHh9kyqiEH6W2V5QyR5O7BDOjMHq9nqt1bzBt9Jk=",
        "SHOPIFY_API_KEY": "id",
        "SHOPIFY_API_SECRET": "secret",
        "CARELOOP_INSTANCE_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1/careloop",
        "CARELOOP_WITHOUT_PROVIDER": "hold",  # production needs a choice without providers
    }
    for name, value in required.items():
        monkeypatch.setenv(name, value)
    (ROOT / ".env").write_text("CARELOOP_PUBLIC_URL=https://from-dotenv.invalid\n")
    try:
        monkeypatch.setenv("CARELOOP_ENV", "development")
        assert Settings.from_env().public_url == "https://from-dotenv.invalid"
        for env in ("test", "production"):
            monkeypatch.setenv("CARELOOP_ENV", env)
            assert Settings.from_env().public_url != "https://from-dotenv.invalid", env
    finally:
        (ROOT / ".env").unlink()
