"""The history import: bulk operations at a Shopify stand-in, the finish
webhook, streaming and applying the results in resumable batches, and
agreement with live webhooks (the newer `updated_at` wins)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from shopify_standin import installed_runtime, serving
from sqlmodel import Session, select

from app import history_import
from app.factory import create_app
from app.install import record_install
from app.models import Customer, HistoryImport, InboxMessage, Order, Shop
from integrations.shopify_auth import TokenSet
from support import SHOP_DOMAIN

TOKEN = "shpat_import_test"


@pytest.fixture
def standin():
    with serving(TOKEN) as standin:
        yield standin


@pytest.fixture
def rt(settings, db, clock, standin):
    """The runtime, with Shopify at the stand-in and the shop holding a token."""
    return installed_runtime(settings, db, clock, standin, TOKEN, {"read_orders"},
                             refresh_token="shprt_import_test")  # fmt: skip


@pytest.fixture
def api(rt, shop):
    """The JSON API of the same app, with the shop's CareLoop token."""
    from flask import Flask

    app: Flask = create_app(rt)
    client = app.test_client()
    return lambda method, path: client.open(path, method=method, headers=shop.auth)


def customer_line(n: int, updated: str, consent: str = "SUBSCRIBED") -> str:
    return json.dumps({
        "id": f"gid://shopify/Customer/{n}", "firstName": f"Customer {n}", "lastName": "Old",
        "locale": "es", "createdAt": "2025-01-01T10:00:00Z", "updatedAt": updated,
        "defaultEmailAddress": {"emailAddress": f"c{n}@example.com", "marketingState": consent,
                                "marketingUpdatedAt": "2025-01-01T10:00:00Z"},
        "defaultPhoneNumber": None,
        "metafield": {"namespace": "facts", "key": "birth_date", "value": "1990-04-12"},
    })  # fmt: skip


def order_line(n: int, customer: int, updated: str, financial: str = "PAID") -> str:
    return json.dumps({
        "id": f"gid://shopify/Order/{n}", "name": f"#{n}", "createdAt": "2025-02-01T10:00:00Z",
        "updatedAt": updated, "cancelledAt": None, "displayFinancialStatus": financial,
        "displayFulfillmentStatus": "FULFILLED", "currencyCode": "EUR",
        "totalPriceSet": {"shopMoney": {"amount": "50.00"}}, "email": f"c{customer}@example.com",
        "phone": None, "customerLocale": "es",
        "customer": {"id": f"gid://shopify/Customer/{customer}",
                     "updatedAt": "2025-01-01T10:00:00Z"},
        "fulfillments": [{
            "id": f"gid://shopify/Fulfillment/{n}", "status": "SUCCESS",
            "displayStatus": "DELIVERED",
            "createdAt": "2025-02-02T10:00:00Z", "updatedAt": "2025-02-05T10:00:00Z",
            "deliveredAt": "2025-02-05T10:00:00Z", "estimatedDeliveryAt": None,
            "trackingInfo": [{"company": "UPS", "number": f"1Z{n}", "url": None}],
        }],
    })  # fmt: skip


def current(db) -> HistoryImport:
    with Session(db) as session:
        return session.exec(select(HistoryImport).order_by(HistoryImport.id.desc())).first()


def orders(db) -> dict[int, Order]:
    with Session(db) as session:
        return {o.shopify_id: o for o in session.exec(select(Order)).all()}


def finish_webhook(deliver, work, operation_id: str) -> None:
    payload = {"admin_graphql_api_id": operation_id, "status": "completed", "error_code": None,
               "type": "query", "created_at": "2026-11-22T11:00:00Z"}  # fmt: skip
    assert deliver("bulk_operations/finish", payload).status_code == 200
    work()


def test_import_brings_in_customers_then_orders_and_reports_progress(
    rt, shop, standin, db, api, deliver, work
):
    started = api("POST", "/api/v1/imports")
    assert started.status_code == 202 and started.json["step"] == "customers"

    standin.complete_bulk([customer_line(n, "2025-03-01T10:00:00Z") for n in range(1, 4)])
    finish_webhook(deliver, work, current(db).bulk_operation_id)  # the webhook: ready
    assert current(db).status == "ready"
    history_import.advance_all(rt)
    assert api("GET", "/api/v1/imports").json["step"] == "orders"

    standin.complete_bulk([order_line(100 + n, n, "2025-02-06T10:00:00Z") for n in range(1, 4)])
    history_import.advance_all(rt)  # no webhook this time: the poll finds it
    report = api("GET", "/api/v1/imports").json
    assert (report["status"], report["lines_applied"], report["lines_skipped"]) == ("done", 3, 0)

    imported = orders(db)
    assert sorted(imported) == [101, 102, 103]
    assert {o.state for o in imported.values()} == {"delivered"}
    with Session(db) as session:
        customer = session.exec(select(Customer).where(Customer.shopify_id == 1)).one()
    assert (customer.first_name, customer.email_consent, str(customer.birth_date)) == (
        "Customer 1",
        "subscribed",
        "1990-04-12",
    )


def test_a_live_webhook_newer_than_the_bulk_record_wins(rt, shop, standin, db, deliver, work):
    deliver("orders/cancelled", "orders_cancelled")  # order 5001001, cancelled 2026-11-22
    work()
    with Session(db, expire_on_commit=False) as session:
        run = history_import.begin(session, rt, session.get(Shop, shop.id))
        session.commit()
    standin.complete_bulk([])
    history_import.advance_all(rt)
    older = order_line(5001001, 7001001, "2026-11-20T09:05:00Z", financial="PENDING")
    standin.complete_bulk([older])
    history_import.advance_all(rt)
    assert current(db).id == run.id and current(db).status == "done"
    assert orders(db)[5001001].state == "cancelled"


def test_an_interrupted_import_resumes_without_applying_a_line_twice(rt, shop, standin, db):
    with Session(db, expire_on_commit=False) as session:
        run = history_import.begin(session, rt, session.get(Shop, shop.id))
        session.commit()
    standin.complete_bulk([])
    history_import.advance_all(rt)  # customers: nothing
    standin.complete_bulk([order_line(200 + n, 1, "2025-02-06T10:00:00Z") for n in range(10)])
    with Session(db) as session:
        history_import.poll(
            session, rt, session.get(Shop, shop.id), session.get(HistoryImport, run.id)
        )
        session.commit()

    def crash_after_first_batch(applied, total):
        raise KeyboardInterrupt  # the process is stopped mid-import

    with pytest.raises(KeyboardInterrupt):
        history_import.apply_ready(rt, run.id, progress=crash_after_first_batch, batch_lines=4)
    assert (current(db).lines_applied, len(orders(db))) == (4, 4)

    history_import.apply_ready(rt, run.id, batch_lines=4)
    assert current(db).status == "done" and current(db).lines_applied == 10
    assert sorted(orders(db)) == list(range(200, 210))


def test_an_unreadable_line_is_dead_lettered_with_its_reason_not_fatal(rt, shop, standin, db, api):
    with Session(db) as session:
        history_import.begin(session, rt, session.get(Shop, shop.id))
        session.commit()
    standin.complete_bulk([])
    history_import.advance_all(rt)
    lines = [order_line(301, 1, "2025-02-06T10:00:00Z"), "{not json",
             order_line(302, 1, "2025-02-06T10:00:00Z")]  # fmt: skip
    standin.complete_bulk(lines)
    history_import.advance_all(rt)
    run = current(db)
    assert (run.status, run.lines_applied, run.lines_skipped) == ("done", 3, 1)
    assert sorted(orders(db)) == [301, 302]
    report = api("GET", "/api/v1/imports").json
    assert "1 line(s) could not be read" in report["error"] and "line 1" in report["error"]
    [dead] = api("GET", "/api/v1/inbox?status=dead").json["messages"]
    assert dead["topic"] == "bulk_operations/orders" and "not JSON" in dead["last_error"]


def test_a_dead_lettered_line_is_erased_by_its_customers_redaction(
    rt, shop, standin, db, deliver, work
):
    with Session(db) as session:
        history_import.begin(session, rt, session.get(Shop, shop.id))
        session.commit()
    standin.complete_bulk([])
    history_import.advance_all(rt)
    unreadable = json.loads(order_line(5001001, 7001001, "2025-02-06T10:00:00Z"))
    standin.complete_bulk([json.dumps(unreadable | {"updatedAt": None})])
    history_import.advance_all(rt)
    assert current(db).lines_skipped == 1

    deliver("customers/redact", "customers_redact")
    work()
    with Session(db) as session:
        [dead] = session.exec(select(InboxMessage).where(InboxMessage.status == "dead")).all()
    assert "c7001001@example.com" not in dead.body


def test_a_file_with_many_bad_lines_is_downloaded_once_and_every_good_line_applied(
    rt, shop, standin, db
):
    with Session(db) as session:
        history_import.begin(session, rt, session.get(Shop, shop.id))
        session.commit()
    standin.complete_bulk([])
    history_import.advance_all(rt)
    good = [order_line(1000 + n, 1, "2025-02-06T10:00:00Z") for n in range(60)]
    bad = ["{not json", '{"id": "gid://shopify/Order/7", "updatedAt": null}', "\x00\x01"]
    lines = [line for n, g in enumerate(good) for line in (g, bad[n % 3])]
    standin.complete_bulk(lines)
    history_import.advance_all(rt)  # the step of the orders reads the file

    run = current(db)
    assert (run.status, run.lines_applied, run.lines_skipped) == ("done", 120, 60)
    assert sorted(orders(db)) == list(range(1000, 1060))
    downloads = [r for r in standin.requests if r.path.startswith("/bulk-results/")]
    assert len(downloads) == 2  # one per step: the customers' file, then the orders'
    with Session(db) as session:
        dead = session.exec(select(InboxMessage).where(InboxMessage.status == "dead")).all()
    assert len(dead) == 60
    assert {m.body for m in dead} == {"{not json", bad[1], "\ufffd\x01"}


def test_a_failed_bulk_operation_is_reported(rt, shop, standin, db, api):
    api("POST", "/api/v1/imports")
    standin.fail_bulk("ACCESS_DENIED")
    history_import.advance_all(rt)
    report = api("GET", "/api/v1/imports").json
    assert report["status"] == "failed" and "ACCESS_DENIED" in report["error"]


def test_bulk_consent_older_than_a_consent_webhook_does_not_undo_it(
    rt, shop, standin, db, deliver, work
):
    consent = {"state": "unsubscribed", "opt_in_level": None,
               "consent_updated_at": "2026-11-01T10:00:00Z"}  # fmt: skip
    unsubscribe = {"customer_id": 7001001, "email_address": "c7001001@example.com",
                   "email_marketing_consent": consent}  # fmt: skip
    deliver("customers_email_marketing_consent/update", unsubscribe)
    work()
    with Session(db) as session:
        history_import.begin(session, rt, session.get(Shop, shop.id))
        session.commit()
    # A newer customer record whose consent dates from before the unsubscribe.
    standin.complete_bulk([customer_line(7001001, "2026-11-20T10:00:00Z", consent="SUBSCRIBED")])
    history_import.advance_all(rt)
    with Session(db) as session:
        customer = session.exec(select(Customer).where(Customer.shopify_id == 7001001)).one()
    assert customer.first_name == "Customer 7001001"  # the record itself applied
    assert customer.email_consent == "unsubscribed"  # its stale consent did not


def test_reconciliation_repairs_what_a_missed_webhook_left_stale(
    rt, shop, standin, db, deliver, work
):
    from app import reconcile

    deliver("orders/paid", "orders_paid")  # 5001001 paid; its cancellation webhook is lost
    work()
    cancelled = json.loads(order_line(5001001, 7001001, "2026-11-22T08:00:00Z", "REFUNDED"))
    cancelled["cancelledAt"] = "2026-11-22T08:00:00Z"
    standin.orders = [cancelled] + [
        json.loads(order_line(400 + n, 1, "2026-11-22T09:00:00Z")) for n in range(150)
    ]
    assert reconcile.reconcile_shop(rt, shop.id, rt.clock.now() - reconcile.WINDOW) == 151
    assert orders(db)[5001001].state == "cancelled"
    assert len(orders(db)) == 151  # four pages read
    queries = [r.body["variables"]["query"] for r in standin.requests if r.field == "orders"]
    assert queries == ["updated_at:>='2026-11-22T06:00:00Z'"] * -(-151 // reconcile.PAGE)


@pytest.fixture
def only_reconciliation(monkeypatch):
    """The scheduler queues only the reconciliation job (the rules' sweep
    and Flow jobs are tests/test_rules.py's and tests/test_flow.py's)."""
    from app import jobs

    monkeypatch.setattr(jobs, "SHOP_JOBS", {"orders.reconcile": jobs.SHOP_JOBS["orders.reconcile"]})


def test_reconciliation_job_restores_the_webhook_subscriptions_an_install_left_missing(
    rt, shop, standin, only_reconciliation
):
    from app import jobs
    from integrations.shopify_admin import REQUIRED_TOPICS

    # Shopify takes only HTTPS webhook addresses.
    rt.settings = dataclasses.replace(rt.settings, public_url="https://careloop.example.com")
    callback = "https://careloop.example.com/webhooks/shopify"
    standin.add_subscription("ORDERS_CREATE", callback)  # the install made only this one
    jobs.enqueue_shop_jobs(rt)
    assert jobs.run_shop_jobs(rt) == 1
    rt.clock.advance(minutes=30)
    jobs.enqueue_shop_jobs(rt)
    assert jobs.run_shop_jobs(rt) == 1  # a second run finds them all in place
    assert sorted(s["topic"] for s in standin.subscriptions.values()) == sorted(REQUIRED_TOPICS)
    assert {s["uri"] for s in standin.subscriptions.values()} == {callback}


def test_a_shop_whose_reconciliation_fails_is_retried_and_holds_up_no_other_shop(
    rt, shop, standin, db, runner, only_reconciliation
):
    from app import jobs
    from app.models import ShopJob

    revoked = TokenSet(
        "shpat_revoked", frozenset({"read_orders"}), rt.clock.now() + timedelta(hours=1),
        "shprt_revoked", rt.clock.now() + timedelta(days=90),
    )  # fmt: skip
    with Session(db) as session:
        record_install(session, rt, "revoked-store.myshopify.com", revoked)
        session.commit()
    standin.orders = [json.loads(order_line(900, 1, "2026-11-22T09:00:00Z"))]

    def job_of(domain: str) -> ShopJob:
        with Session(db) as session:
            return session.exec(
                select(ShopJob).join(Shop, Shop.id == ShopJob.shop_id).where(Shop.domain == domain)
            ).one()

    jobs.enqueue_shop_jobs(rt)
    assert jobs.run_shop_jobs(rt) == 2
    assert job_of(SHOP_DOMAIN).status == "done"
    assert 900 in orders(db)  # the healthy shop was reconciled
    failed = job_of("revoked-store.myshopify.com")
    assert (failed.status, failed.attempts) == ("queued", 1)
    assert failed.due_at > rt.clock.now() and failed.last_error
    assert jobs.run_shop_jobs(rt) == 0  # backing off, not spinning

    for _ in range(jobs.SHOP_JOB_MAX_ATTEMPTS - 1):
        rt.clock.current = job_of("revoked-store.myshopify.com").due_at
        jobs.run_shop_jobs(rt)
    assert job_of("revoked-store.myshopify.com").status == "dead"

    from app import cli

    listed = runner.invoke(cli.main, ["jobs", "list"])
    assert "revoked-store.myshopify.com\torders.reconcile" in listed.output, listed.output
    retried = runner.invoke(cli.main, ["jobs", "retry", "--shop", "revoked-store.myshopify.com"])
    assert retried.output.strip() == "requeued 1 job(s)"
    assert job_of("revoked-store.myshopify.com").status == "queued"


def test_reconciliation_changes_nothing_that_is_current(rt, shop, standin, db, deliver, work):
    from app import reconcile

    deliver("orders/cancelled", "orders_cancelled")
    work()
    stale = json.loads(order_line(5001001, 7001001, "2026-11-20T09:05:00Z", "PAID"))
    standin.orders = [stale]
    reconcile.reconcile_shop(rt, shop.id, rt.clock.now() - reconcile.WINDOW)
    assert orders(db)[5001001].state == "cancelled"


def test_cli_imports_the_history_with_a_progress_bar(rt, shop, standin, db, runner, monkeypatch):
    from app import cli

    monkeypatch.setenv("SHOPIFY_URL_TEMPLATE", standin.base_url)
    monkeypatch.setattr(cli, "IMPORT_POLL_SECONDS", 0.01)
    standin.auto_complete = {
        "customers": [customer_line(1, "2025-03-01T10:00:00Z")],
        "orders": [order_line(500 + n, 1, "2025-02-06T10:00:00Z") for n in range(5)],
    }
    result = runner.invoke(cli.main, ["shops", "import", SHOP_DOMAIN])
    assert result.exit_code == 0, result.output
    assert "importing orders" in result.output and "imported" in result.output
    assert sorted(orders(db)) == [500, 501, 502, 503, 504]
    assert current(db).status == "done"


def test_cli_import_of_a_shop_without_a_token_fails_clearly(runner, other_shop):
    from app import cli

    result = runner.invoke(cli.main, ["shops", "import", other_shop.domain])
    assert result.exit_code != 0
    assert "cannot start the import" in result.output
