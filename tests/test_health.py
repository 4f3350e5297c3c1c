"""Liveness, readiness and the Prometheus metrics an operator scrapes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func
from sqlmodel import Session, select

from app.clock import Clock
from app.db import make_engine
from app.factory import create_app
from app.models import InboxMessage
from app.runtime import build_runtime
from support import load_fixture

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_healthz_is_200(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_200_with_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["database"] == "ok"
    assert response.json["degraded"] == []


def test_readyz_says_the_inbox_is_behind_when_no_worker_takes_it(shop, client, deliver, clock):
    assert deliver("orders/create", "orders_create").status_code == 200
    clock.advance(minutes=10)  # and no worker ran

    response = client.get("/readyz")

    assert response.status_code == 200  # webhooks are still accepted
    assert response.json["status"] == "degraded"
    assert response.json["inbox_lag_seconds"] == 600
    assert "waited 600 s for a worker" in response.json["degraded"][0]


def test_readyz_counts_dead_letters(shop, client, deliver, work):
    payload = load_fixture("shopify", "orders_create")
    del payload["id"]  # can never be understood: dead-lettered at once
    deliver("orders/create", payload)
    work()

    response = client.get("/readyz").json

    assert (response["status"], response["inbox_dead"]) == ("degraded", 1)
    assert response["degraded"] == ["inbox: 1 dead letter(s) (careloop inbox list)"]


def test_metrics_behind_a_token_answer_only_that_bearer(settings, db, clock):
    client = create_app(
        build_runtime(replace(settings, metrics_token="scrape-me"), engine=db, clock=clock)
    )
    client = client.test_client()

    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert right.status_code == 200 and b"careloop_inbox_lag_seconds" in right.data


def test_readyz_is_503_when_the_database_is_unreachable(settings):
    app = create_app(build_runtime(settings, engine=make_engine(UNREACHABLE), clock=Clock()))
    client = app.test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unreachable"}
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_metrics_is_prometheus_text(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    families = {
        f.name: f.type for f in text_string_to_metric_families(response.get_data(as_text=True))
    }
    assert families["careloop_webhooks_received"] == "counter"
    assert families["careloop_webhooks_rejected"] == "counter"
    assert families["careloop_inbox_messages"] == "gauge"
    assert families["careloop_inbox_lag_seconds"] == "gauge"


def test_received_counter_moves_with_accepted_deliveries(shop, client, deliver):
    name = "careloop_webhooks_received_total"
    labels = {"source": "shopify", "topic": "orders/create"}
    before = scrape(client)

    deliver("orders/create", "orders_create", webhook_id="w1")
    deliver("orders/create", "orders_create", webhook_id="w2")
    deliver("orders/create", "orders_create", webhook_id="w1")  # a redelivery
    after = scrape(client)

    def increase(result):
        return value(after, name, **labels, result=result) - value(
            before, name, **labels, result=result
        )

    assert increase("stored") == 2
    assert increase("duplicate") == 1


def test_rejected_counter_moves_by_reason(shop, client, deliver):
    name = "careloop_webhooks_rejected_total"
    before = scrape(client)

    deliver("orders/create", "orders_create", secret="wrong-secret")
    deliver("orders/create", "orders_create", secret="wrong-secret")
    deliver("products/create", "unknown_topic")
    deliver("orders/create", "orders_create", domain="stranger.myshopify.com")
    after = scrape(client)

    for reason, expected in [
        ("invalid_signature", 2),
        ("unsupported_topic", 1),
        ("unknown_shop", 1),
    ]:
        increase = value(after, name, source="shopify", reason=reason) - value(
            before, name, source="shopify", reason=reason
        )
        assert increase == expected, reason


def inbox_counts(db) -> dict[str, int]:
    with Session(db) as session:
        rows = session.exec(
            select(InboxMessage.status, func.count()).group_by(InboxMessage.status)
        ).all()
    return {"pending": 0, "done": 0, "dead": 0} | dict(rows)


def test_inbox_gauge_matches_the_database(shop, client, deliver, work, db):
    assert {
        status: value(scrape(client), "careloop_inbox_messages", status=status)
        for status in ("pending", "done", "dead")
    } == {"pending": 0, "done": 0, "dead": 0}

    deliver("orders/create", "orders_create")
    deliver("orders/paid", "orders_paid")
    broken = load_fixture("shopify", "orders_create")
    del broken["id"]
    deliver("orders/create", broken)
    work()  # two done, one dead
    deliver("orders/updated", "orders_updated")
    deliver("fulfillments/create", "fulfillments_create")  # two pending

    samples = scrape(client)
    gauge = {
        status: value(samples, "careloop_inbox_messages", status=status)
        for status in ("pending", "done", "dead")
    }
    assert gauge == inbox_counts(db) == {"pending": 2, "done": 2, "dead": 1}


def test_inbox_lag_is_the_age_of_the_oldest_pending_message(shop, client, deliver, work, clock):
    assert value(scrape(client), "careloop_inbox_lag_seconds") == 0

    deliver("orders/create", "orders_create")
    clock.advance(seconds=90)
    assert value(scrape(client), "careloop_inbox_lag_seconds") == pytest.approx(90)

    deliver("orders/paid", "orders_paid")  # newer: the oldest still decides
    clock.advance(seconds=30)
    assert value(scrape(client), "careloop_inbox_lag_seconds") == pytest.approx(120)

    work()
    assert value(scrape(client), "careloop_inbox_lag_seconds") == 0


def test_dead_letters_do_not_count_as_lag(shop, client, deliver, work, clock):
    broken = load_fixture("shopify", "orders_create")
    del broken["id"]
    deliver("orders/create", broken)
    work()
    clock.advance(hours=5)

    samples = scrape(client)
    assert value(samples, "careloop_inbox_messages", status="dead") == 1
    assert value(samples, "careloop_inbox_lag_seconds") == 0
