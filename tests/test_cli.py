"""The `careloop` command line, run against the test database: shops and their
tokens, the schema, the dead letters and the worker."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from processes import serve_wsgi
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from app.cli import main
from app.clock import utcnow
from app.migrate import alembic_config
from app.models import ApiToken, InboxMessage, Order, Shop
from support import ON_POSTGRESQL, OTHER_SHOP_DOMAIN, SHOP_DOMAIN, load_fixture, now_header

TOKEN_LINE = re.compile(r"^API token \(shown once\): (clp_\S+)$", re.MULTILINE)


def invoke(runner, *args: str):
    return runner.invoke(main, list(args))


def token_from(result) -> str:
    assert result.exit_code == 0, result.output
    [token] = TOKEN_LINE.findall(result.output)
    return token


def shops(db) -> list[Shop]:
    with Session(db) as session:
        return list(session.exec(select(Shop).order_by(Shop.domain)).all())


def statuses(db) -> dict[int, str]:
    with Session(db) as session:
        return {m.id: m.status for m in session.exec(select(InboxMessage)).all()}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def dead_letter(deliver, work, **options) -> None:
    payload = load_fixture("shopify", "orders_create")
    del payload["id"]
    assert deliver("orders/create", payload, **options).status_code == 200
    work()


# --- shops ----------------------------------------------------------------


def test_shops_add_prints_a_token_that_works_on_the_api(runner, client, db):
    result = invoke(runner, "shops", "add", "new-store.myshopify.com", "--name", "New Store")

    token = token_from(result)
    assert "shop new-store.myshopify.com is installed" in result.output
    [shop] = shops(db)
    assert (shop.domain, shop.name, shop.uninstalled_at) == (
        "new-store.myshopify.com",
        "New Store",
        None,
    )
    with Session(db) as session:
        [stored] = session.exec(select(ApiToken)).all()
    assert stored.token_hash and token not in stored.token_hash  # only a hash is kept
    response = client.get("/api/v1/orders", headers=auth(token))
    assert response.status_code == 200


def test_shops_add_normalises_the_domain(runner, db):
    token_from(invoke(runner, "shops", "add", "  New-Store.MyShopify.COM "))
    assert [s.domain for s in shops(db)] == ["new-store.myshopify.com"]


@pytest.mark.parametrize(
    "domain",
    [
        "evil.com",
        "a.myshopify.com.evil.com",
        "myshopify.com",
        "-x.myshopify.com",
        "x.myshopify.com/..",
        "a b.myshopify.com",
        "",
    ],
)
def test_shops_add_refuses_an_invalid_domain_and_stores_nothing(runner, client, db, domain):
    result = invoke(runner, "shops", "add", "--", domain)  # "--": "-x..." is not an option

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "DOMAIN" in result.output
    assert "is not a shop domain of the form <name>.myshopify.com" in result.output
    assert "API token" not in result.output
    assert shops(db) == []


def test_another_token_leaves_the_earlier_ones_working(runner, client, shop, other_shop):
    new = token_from(invoke(runner, "shops", "token", shop.domain))

    assert new != shop.token
    assert client.get("/api/v1/orders", headers=shop.auth).status_code == 200
    assert client.get("/api/v1/orders", headers=auth(new)).status_code == 200


def test_shops_token_revoke_stops_every_earlier_token_of_that_shop_only(
    runner, client, shop, other_shop
):
    second = token_from(invoke(runner, "shops", "token", shop.domain))

    result = invoke(runner, "shops", "token", shop.domain, "--revoke")

    assert "revoked 2 token(s)" in result.output
    for earlier in (shop.token, second):
        assert client.get("/api/v1/orders", headers=auth(earlier)).status_code == 401
    assert client.get("/api/v1/orders", headers=auth(token_from(result))).status_code == 200
    assert client.get("/api/v1/orders", headers=other_shop.auth).status_code == 200


def test_shops_token_for_an_unknown_shop_fails_clearly(runner, shop):
    result = invoke(runner, "shops", "token", "stranger.myshopify.com")
    assert result.exit_code != 0
    assert "no shop 'stranger.myshopify.com'" in result.output
    assert TOKEN_LINE.search(result.output) is None


def test_shops_token_for_an_uninstalled_shop_refuses_and_points_to_shops_add(
    runner, shop, deliver, work
):
    deliver("app/uninstalled", "app_uninstalled")
    work()
    result = invoke(runner, "shops", "token", SHOP_DOMAIN)
    assert result.exit_code != 0
    assert "uninstalled" in result.output and "shops add" in result.output
    assert TOKEN_LINE.search(result.output) is None


def test_shops_add_reinstalls_an_uninstalled_shop_with_a_new_token(
    runner, client, shop, deliver, work
):
    deliver("app/uninstalled", "app_uninstalled")
    work()
    assert client.get("/api/v1/orders", headers=shop.auth).status_code == 401

    token = token_from(invoke(runner, "shops", "add", shop.domain))

    assert client.get("/api/v1/orders", headers=auth(token)).status_code == 200
    assert deliver("orders/create", "orders_create").status_code == 200  # webhooks accepted again


def test_shops_list_shows_each_shop_with_its_status(runner, shop, other_shop, deliver, work):
    deliver("app/uninstalled", "app_uninstalled")  # demo-store uninstalls
    work()

    result = invoke(runner, "shops", "list")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{SHOP_DOMAIN}\tuninstalled\tdemo-store",
        f"{OTHER_SHOP_DOMAIN}\tinstalled\tother-store",
    ]


def test_shops_list_is_empty_without_shops(runner, db):
    result = invoke(runner, "shops", "list")
    assert (result.exit_code, result.output) == (0, "")


# --- schema ---------------------------------------------------------------


def test_db_upgrade_is_idempotent(runner, db, env):
    head = ScriptDirectory.from_config(alembic_config(env["DATABASE_URL"])).get_current_head()

    for _ in range(2):
        result = invoke(runner, "db", "upgrade")
        assert result.exit_code == 0, result.output
        assert "database at the latest revision" in result.output
        with db.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head


def test_db_upgrade_keeps_the_data(runner, shop, client):
    assert invoke(runner, "db", "upgrade").exit_code == 0
    assert client.get("/api/v1/orders", headers=shop.auth).status_code == 200


# --- dead letters ---------------------------------------------------------


def test_inbox_list_shows_dead_letters_of_every_shop(runner, shop, other_shop, deliver, work, db):
    dead_letter(deliver, work)
    dead_letter(deliver, work, domain=OTHER_SHOP_DOMAIN)
    deliver("orders/create", "orders_create")
    work()  # done: not listed

    result = invoke(runner, "inbox", "list", "--status", "dead")

    assert result.exit_code == 0, result.output
    dead = sorted(i for i, s in statuses(db).items() if s == "dead")
    lines = result.output.splitlines()
    assert [int(line.split("\t")[0]) for line in lines] == sorted(dead, reverse=True)
    assert {line.split("\t")[1] for line in lines} == {SHOP_DOMAIN, OTHER_SHOP_DOMAIN}
    for line in lines:
        _, _, topic, attempts, error = line.split("\t")
        assert (topic, attempts) == ("orders/create", "attempts=1")
        assert error.startswith("PayloadError")
    assert invoke(runner, "inbox", "list").output == result.output  # dead is the default


def test_inbox_list_by_other_status(runner, shop, deliver, work):
    deliver("orders/create", "orders_create")
    work()
    deliver("orders/paid", "orders_paid")

    pending = invoke(runner, "inbox", "list", "--status", "pending").output.splitlines()
    done = invoke(runner, "inbox", "list", "--status", "done").output.splitlines()

    assert [line.split("\t")[2] for line in pending] == ["orders/paid"]
    assert [line.split("\t")[2] for line in done] == ["orders/create"]
    assert invoke(runner, "inbox", "list", "--status", "lost").exit_code == 2


def test_inbox_retry_requeues_the_given_dead_letters(runner, shop, deliver, work, db):
    dead_letter(deliver, work)
    dead_letter(deliver, work)
    first, second = sorted(statuses(db))

    result = invoke(runner, "inbox", "retry", str(first))

    assert result.exit_code == 0, result.output
    assert "requeued 1 message(s)" in result.output
    assert statuses(db) == {first: "pending", second: "dead"}
    with Session(db) as session:
        assert session.get(InboxMessage, first).attempts == 0


def test_inbox_retry_all_requeues_every_dead_letter(runner, shop, other_shop, deliver, work, db):
    dead_letter(deliver, work)
    dead_letter(deliver, work, domain=OTHER_SHOP_DOMAIN)
    deliver("orders/create", "orders_create")
    work()

    result = invoke(runner, "inbox", "retry", "--all")

    assert result.exit_code == 0, result.output
    assert "requeued 2 message(s)" in result.output
    assert sorted(statuses(db).values()) == ["done", "pending", "pending"]


def test_inbox_retry_leaves_messages_that_are_not_dead_alone(runner, shop, deliver, work, db):
    deliver("orders/create", "orders_create")
    work()
    [done] = statuses(db)

    result = invoke(runner, "inbox", "retry", str(done))

    assert "requeued 0 message(s)" in result.output
    assert statuses(db) == {done: "done"}


def test_inbox_retry_without_ids_is_a_usage_error_and_changes_nothing(
    runner, shop, deliver, work, db
):
    dead_letter(deliver, work)
    before = statuses(db)

    result = invoke(runner, "inbox", "retry")

    assert result.exit_code == 2
    assert "give message ids, or --all" in result.output
    assert statuses(db) == before


# --- the worker -----------------------------------------------------------


def test_worker_once_processes_pending_deliveries(runner, shop, client, deliver, clock, db):
    # The command runs on the real clock: receive the deliveries just before now.
    clock.current = utcnow() - timedelta(seconds=5)
    for topic in ("orders/create", "orders/paid", "fulfillments/create"):
        sent = deliver(topic, topic.replace("/", "_"), triggered_at=now_header())
        assert sent.status_code == 200
    assert set(statuses(db).values()) == {"pending"}

    result = invoke(runner, "worker", "--once")

    assert result.exit_code == 0, result.output
    assert "processed 3 message(s)" in result.output
    assert set(statuses(db).values()) == {"done"}
    with Session(db) as session:
        [order] = session.exec(select(Order)).all()
    assert (order.shopify_id, order.state) == (5001001, "fulfilled")
    assert client.get("/api/v1/orders/5001001", headers=shop.auth).json["state"] == "fulfilled"
    assert "processed 0 message(s)" in invoke(runner, "worker", "--once").output


# --- a database that cannot be reached ------------------------------------


@ON_POSTGRESQL
@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"database": "careloop_no_such_database"}, "createdb careloop_no_such_database"),
        ({"username": "careloop_no_such_role"}, "refused the credentials in DATABASE_URL"),
        ({"port": 9}, "is PostgreSQL running there"),
    ],
)
def test_db_upgrade_without_a_reachable_database_says_what_failed_in_one_line(
    runner, env, monkeypatch, change, said
):
    url = make_url(env["DATABASE_URL"]).set(**change)
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))

    result = invoke(runner, "db", "upgrade")

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert said in result.output


def test_a_command_on_an_sqlite_file_it_cannot_open_says_so_in_one_line(
    runner, env, monkeypatch, tmp_path
):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'careloop.db'}")

    result = invoke(runner, "shops", "list")

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "cannot open the SQLite database" in result.output


# --- the demo ---------------------------------------------------------------


def test_demo_without_the_servers_database_says_so_and_creates_none(runner, monkeypatch, tmp_path):
    missing = tmp_path / "careloop.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")

    result = invoke(runner, "demo", "--url", "http://127.0.0.1:9")

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"there is no database at {missing}" in result.output
    assert "careloop run" in result.output and "CARELOOP_INSTANCE_DIR" in result.output
    assert not missing.exists()


def test_demo_against_an_empty_database_says_so(runner, monkeypatch, tmp_path):
    empty = tmp_path / "careloop.db"
    sqlite3.connect(empty).close()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{empty}")

    result = invoke(runner, "demo", "--url", "http://127.0.0.1:9")

    assert result.exit_code == 1 and "is empty" in result.output, result.output


def test_demo_against_a_server_with_other_secrets_says_why_it_was_refused(runner, app, monkeypatch):
    monkeypatch.setenv("SHOPIFY_API_SECRET", "not-the-servers-secret")
    with serve_wsgi(app) as url:
        result = invoke(runner, "demo", "--url", url)

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output.count("  401 ") == 1  # it stops at the first refusal
    assert "refused the demo's webhook signatures (401)" in result.output
    assert "SHOPIFY_API_SECRET" in result.output
