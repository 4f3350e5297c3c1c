"""Shopify Flow triggers fired through the GraphQL Admin API against the
Shopify stand-in: once per delay, retried when Shopify fails, never again
once accepted."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from shopify_standin import installed_runtime, serving
from sqlmodel import Session, select

from app import jobs, rules
from app.events import ShipmentSnapshot, ShipmentStatus
from app.models import DelayEpisode, ShopJob
from app.orders import Cause, apply
from support import load_fixture

TOKEN = "shpat_flow_test"
ORDER = 5001001
EXTENSIONS = Path(__file__).resolve().parent.parent / "extensions"


@pytest.fixture
def standin():
    with serving(TOKEN) as standin:
        yield standin


@pytest.fixture
def rt(settings, db, clock, standin):
    """The runtime with Shopify at the stand-in, the shop installed with a token."""
    return installed_runtime(settings, db, clock, standin, TOKEN, {"read_orders"},
                             refresh_token="shprt_flow_test")  # fmt: skip


def parcel(rt, status, **facts) -> None:
    now = rt.clock.now()
    snapshot = ShipmentSnapshot(
        source="shipbob", external_id="sb-1", status=status, updated_at=now,
        order_shopify_id=ORDER, carrier="Acme Post", tracking_number="XX1", **facts,
    )  # fmt: skip
    with Session(rt.engine) as session:
        rules.react(session, apply(session, 1, snapshot, Cause("test", None, now)), now)
        session.commit()


def run_jobs(rt) -> None:
    jobs.run_shop_jobs(rt)


def test_each_trigger_is_declared_as_a_flow_trigger_extension():
    declared = {}
    for path in EXTENSIONS.glob("*/shopify.extension.toml"):
        [extension] = tomllib.loads(path.read_text())["extensions"]
        declared[extension["handle"]] = extension
        assert extension["type"] == "flow_trigger" and path.parent.name == extension["handle"]
        assert len(extension["handle"]) <= 30
    assert {h: e["name"] for h, e in declared.items()} == {
        "order-delay-detected": "Order delay detected",
        "order-delivered-late": "Order delivered late",
        "tracking-problem-detected": "Tracking problem detected",
    }


def test_a_delay_and_its_late_delivery_fire_their_triggers_once(rt, deliver, work, standin, clock,
                                                                db):  # fmt: skip
    deliver("orders/paid", load_fixture("shopify", "orders_paid"))
    work()
    parcel(rt, ShipmentStatus.EXCEPTION, status_detail="Address not found")
    run_jobs(rt)
    clock.advance(hours=30)
    parcel(rt, ShipmentStatus.DELIVERED)
    run_jobs(rt)
    run_jobs(rt)
    jobs.enqueue_shop_jobs(rt)  # the periodic run: nothing is owed any more
    run_jobs(rt)
    assert [(h, p["order_id"]) for h, p in standin.flow_triggers] == [
        ("order-delay-detected", ORDER), ("order-delivered-late", ORDER),
    ]  # fmt: skip
    detected, late = (p for _, p in standin.flow_triggers)
    assert (detected["Delay cause"], detected["Customer told"]) == ("exception", True)
    assert late["Delay causes"] == "exception"


def test_a_tracking_problem_goes_to_flow_not_to_the_customer(rt, deliver, work, standin, clock):
    deliver("orders/paid", load_fixture("shopify", "orders_paid"))
    work()
    parcel(rt, ShipmentStatus.SHIPPED, shipped_at=clock.now())
    clock.advance(hours=73)
    jobs.enqueue_shop_jobs(rt)
    run_jobs(rt)  # the sweep finds it, and queues the Flow job
    run_jobs(rt)
    [(handle, payload)] = standin.flow_triggers
    assert handle == "tracking-problem-detected"
    assert (payload["Carrier"], payload["Tracking number"]) == ("Acme Post", "XX1")


def test_shopify_failing_leaves_the_trigger_owed_and_the_retry_fires_it_once(
    rt, deliver, work, standin, clock, db
):
    deliver("orders/paid", load_fixture("shopify", "orders_paid"))
    work()
    standin.fail_next(3, status=503)  # every one of the client's own tries
    parcel(rt, ShipmentStatus.EXCEPTION)
    run_jobs(rt)
    assert standin.flow_triggers == []
    with Session(db) as session:
        job = session.exec(select(ShopJob).where(ShopJob.kind == "flow.triggers")).one()
        assert job.status == "queued" and job.last_error
        assert session.exec(select(DelayEpisode)).one().flow_detected_at is None
    clock.current = job.due_at
    run_jobs(rt)
    assert [h for h, _ in standin.flow_triggers] == ["order-delay-detected"]
