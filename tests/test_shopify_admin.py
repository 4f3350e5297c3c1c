"""The GraphQL Admin API client against a Shopify stand-in on loopback: data,
the token header, auth failures that never show the token, the cost bucket
(waiting before and after THROTTLED), retries of 5xx and dead connections,
GraphQL errors and userErrors; keeping a shop's webhook subscriptions right
without duplicates; and shopify.app.toml against the topics we handle.

No test sleeps: the client and the stand-in share a `ManualTime`, so the
bucket refills exactly as far as the client's recorded sleeps say.
"""

from __future__ import annotations

import logging
import tomllib
from urllib.parse import urlsplit

import pytest
from processes import free_port
from shopify_standin import WEBHOOK_TOPICS, ManualTime, Resolver, ShopifyStandIn, serve

from app.config import ROOT, Settings
from app.retry import JITTER
from integrations.shopify import COMPLIANCE_TOPICS, SUPPORTED_TOPICS
from integrations.shopify_admin import (
    REQUIRED_TOPICS,
    TOPIC_ENUMS,
    AdminAuthError,
    AdminClient,
    AdminError,
    AdminUnavailable,
    AdminUserErrors,
    ensure_webhook_subscriptions,
)
from support import SHOP_DOMAIN

TOKEN = "shpat_0123456789abcdef0123456789abcdef"
VERSION = "2026-07"
CALLBACK = "https://careloop.example.com/webhooks/shopify"
SHOP_QUERY = "query { shop { name myshopifyDomain } }"


@pytest.fixture
def manual() -> ManualTime:
    return ManualTime()


@pytest.fixture
def shopify(manual):
    """The stand-in, serving; `shopify.url` is its base URL. It knows a
    `shop` root field (cost 1) besides the webhook subscriptions."""
    standin = ShopifyStandIn(valid_tokens={TOKEN}, clock=manual.now)
    standin.resolvers["shop"] = Resolver(
        lambda _: {"name": "Demo Store", "myshopifyDomain": SHOP_DOMAIN}
    )
    with serve(standin) as url:
        standin.url = url
        yield standin


def backed_off(sleeps: list[float], delays: list[float]) -> bool:
    """The retries waited these delays, each plus its jitter (app.retry)."""
    return len(sleeps) == len(delays) and all(
        d <= s <= d * (1 + JITTER) for s, d in zip(sleeps, delays, strict=True)
    )


def admin_client(shopify, manual, token: str = TOKEN, base_url: str | None = None) -> AdminClient:
    return AdminClient(
        SHOP_DOMAIN, token, VERSION, base_url=base_url or shopify.url, timeout_seconds=5,
        sleep=manual.sleep, monotonic=manual.now,
    )  # fmt: skip


@pytest.fixture
def admin(shopify, manual) -> AdminClient:
    return admin_client(shopify, manual)


def only_topics(shopify) -> list[str]:
    return sorted(n["topic"] for n in shopify.subscriptions.values())


# --- the client ---------------------------------------------------------------------


def test_execute_returns_the_data_of_the_answer(admin):
    assert admin.execute(SHOP_QUERY) == {
        "shop": {"name": "Demo Store", "myshopifyDomain": SHOP_DOMAIN}
    }


def test_each_request_carries_the_token_header_to_the_versioned_endpoint(admin, shopify):
    admin.execute(SHOP_QUERY, {"unused": 1})
    [sent] = shopify.requests
    assert sent.path == f"/admin/api/{VERSION}/graphql.json"
    assert sent.headers["X-Shopify-Access-Token"] == TOKEN
    assert sent.body == {"query": SHOP_QUERY, "variables": {"unused": 1}}


def test_a_refused_token_raises_auth_error_that_never_shows_the_token(shopify, manual, caplog):
    caplog.set_level(logging.DEBUG)
    revoked = "shpat_revoked_ffffffffffffffffffffffff"
    client = admin_client(shopify, manual, token=revoked)
    with pytest.raises(AdminAuthError) as raised:
        client.execute(SHOP_QUERY)
    assert "401" in str(raised.value) and SHOP_DOMAIN in str(raised.value)
    shown = " ".join([str(raised.value), repr(raised.value), repr(client), caplog.text])
    assert revoked not in shown
    assert len(shopify.requests) == 1  # a refused token is not retried
    assert manual.sleeps == []


def test_throttled_answers_are_waited_out_by_restore_rate_then_succeed(admin, shopify, manual):
    shopify.resolvers["shop"].cost = 250
    shopify.throttle_next(2)
    assert admin.execute(SHOP_QUERY)["shop"]["name"] == "Demo Store"
    # Each THROTTLED answer reports an empty bucket restoring 100 points a
    # second: 250 points are there after 2.5 s.
    assert manual.sleeps == [2.5, 2.5]
    assert len(shopify.requests) == 3 and shopify.graphql_calls() == ["shop"]


def test_a_query_dearer_than_what_is_left_waits_before_it_is_sent(admin, shopify, manual):
    shopify.resolvers["shop"].cost = 500
    for _ in range(4):  # 2000 points spent without any time passing
        admin.execute(SHOP_QUERY)
    assert admin.throttle_status.currently_available == 0
    assert manual.sleeps == []
    admin.execute(SHOP_QUERY)
    assert manual.sleeps == [5.0]  # 500 points at 100 a second, waited before sending
    assert len(shopify.requests) == 5  # so Shopify never had to throttle it
    assert all(r.field == "shop" for r in shopify.requests)


def test_server_errors_are_retried_with_backoff_then_succeed(admin, shopify, manual):
    shopify.fail_next(2, status=503)
    assert admin.execute(SHOP_QUERY)["shop"]["myshopifyDomain"] == SHOP_DOMAIN
    assert [r.status for r in shopify.requests] == [503, 503, 200]
    assert backed_off(manual.sleeps, [0.5, 1.0])


def test_persistent_server_errors_give_up_after_three_attempts(admin, shopify, manual, caplog):
    caplog.set_level(logging.DEBUG)
    shopify.fail_next(10, status=502)
    with pytest.raises(AdminUnavailable, match="failed 3 times"):
        admin.execute(SHOP_QUERY)
    assert len(shopify.requests) == 3
    assert backed_off(manual.sleeps, [0.5, 1.0])
    assert TOKEN not in caplog.text


def test_a_shop_that_cannot_be_reached_gives_up_after_three_attempts(shopify, manual):
    client = admin_client(shopify, manual, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(AdminUnavailable, match="ConnectionError"):
        client.execute(SHOP_QUERY)
    assert backed_off(manual.sleeps, [0.5, 1.0])


def test_graphql_errors_raise_admin_error_carrying_them(admin, shopify):
    with pytest.raises(AdminError) as raised:
        admin.execute("query { shopp { name } }")
    assert type(raised.value) is AdminError
    assert raised.value.errors[0]["extensions"]["code"] == "undefinedField"
    assert "shopp" in str(raised.value)
    assert len(shopify.requests) == 1


# --- webhook subscriptions ------------------------------------------------------------


def test_every_handled_topic_maps_to_a_documented_enum_except_compliance_ones():
    assert set(TOPIC_ENUMS) == (SUPPORTED_TOPICS - COMPLIANCE_TOPICS) | {"bulk_operations/finish"}
    assert set(REQUIRED_TOPICS) <= WEBHOOK_TOPICS  # the stand-in's list, typed from the docs
    assert len(set(REQUIRED_TOPICS)) == len(TOPIC_ENUMS)


def test_ensure_creates_every_required_topic_on_an_empty_shop(admin, shopify):
    report = ensure_webhook_subscriptions(admin, CALLBACK, REQUIRED_TOPICS)
    assert report.created == REQUIRED_TOPICS
    assert (report.updated, report.unchanged) == ((), ())
    assert only_topics(shopify) == sorted(REQUIRED_TOPICS)
    assert {(n["uri"], n["format"]) for n in shopify.subscriptions.values()} == {(CALLBACK, "JSON")}


def test_customer_subscriptions_name_the_birth_date_namespace_and_follow_its_change(admin, shopify):
    ensure_webhook_subscriptions(admin, CALLBACK, metafield_namespaces=("facts",))
    by_topic = {n["topic"]: n for n in shopify.subscriptions.values()}
    assert by_topic["CUSTOMERS_UPDATE"]["metafieldNamespaces"] == ["facts"]
    assert by_topic["CUSTOMERS_CREATE"]["metafieldNamespaces"] == ["facts"]
    assert by_topic["ORDERS_CREATE"]["metafieldNamespaces"] == []

    report = ensure_webhook_subscriptions(admin, CALLBACK, metafield_namespaces=("custom",))

    assert sorted(report.updated) == ["CUSTOMERS_CREATE", "CUSTOMERS_UPDATE"]
    assert by_topic["CUSTOMERS_UPDATE"]["metafieldNamespaces"] == ["custom"]
    assert only_topics(shopify) == sorted(REQUIRED_TOPICS)  # updated in place, none added


def test_ensure_twice_creates_nothing_the_second_time(admin, shopify):
    ensure_webhook_subscriptions(admin, CALLBACK, page_size=4)
    first_run = len(shopify.requests)
    report = ensure_webhook_subscriptions(admin, CALLBACK, page_size=4)
    assert (report.created, report.updated) == ((), ())
    assert report.unchanged == REQUIRED_TOPICS
    second_run = shopify.graphql_calls()[first_run:]
    pages = -(-len(REQUIRED_TOPICS) // 4)  # 4 a page; no mutation
    assert second_run == ["webhookSubscriptions"] * pages
    assert only_topics(shopify) == sorted(REQUIRED_TOPICS)  # exactly one per topic


def test_ensure_repairs_a_subscription_pointing_at_an_old_url_in_place(admin, shopify):
    old = shopify.add_subscription("ORDERS_PAID", "https://old-host.example/webhooks/shopify")
    xml = shopify.add_subscription("ORDERS_CREATE", CALLBACK, format="XML")
    other = shopify.add_subscription("SHOP_UPDATE", "https://elsewhere.example/hook")
    report = ensure_webhook_subscriptions(admin, CALLBACK)
    assert report.updated == ("ORDERS_CREATE", "ORDERS_PAID")
    assert set(report.created) == set(REQUIRED_TOPICS) - {"ORDERS_PAID", "ORDERS_CREATE"}
    assert shopify.subscriptions[old["id"]]["uri"] == CALLBACK
    assert shopify.subscriptions[xml["id"]]["format"] == "JSON"
    assert shopify.subscriptions[other["id"]]["uri"] == "https://elsewhere.example/hook"
    assert only_topics(shopify) == sorted([*REQUIRED_TOPICS, "SHOP_UPDATE"])


def test_ensure_surfaces_user_errors(admin, shopify):
    shopify.denied_topics.add("FULFILLMENTS_CREATE")  # e.g. read_fulfillments not granted
    with pytest.raises(AdminUserErrors) as raised:
        ensure_webhook_subscriptions(admin, CALLBACK)
    [error] = raised.value.errors
    assert error["field"] == ["topic"] and "FULFILLMENTS_CREATE" in error["message"]
    assert "FULFILLMENTS_CREATE" in str(raised.value)
    assert "FULFILLMENTS_CREATE" not in only_topics(shopify)


def test_a_subscription_created_meanwhile_elsewhere_is_adopted_not_duplicated(admin, shopify):
    create = shopify.resolvers["webhookSubscriptionCreate"]
    original = create.fn

    def another_worker_was_faster(variables):
        if variables["topic"] == "ORDERS_CREATE":
            shopify.add_subscription("ORDERS_CREATE", CALLBACK)
        return original(variables)  # now refused: "Address for this topic has already been taken"

    create.fn = another_worker_was_faster
    report = ensure_webhook_subscriptions(admin, CALLBACK)
    assert "ORDERS_CREATE" in report.unchanged and "ORDERS_CREATE" not in report.created
    assert only_topics(shopify).count("ORDERS_CREATE") == 1
    assert len(report.created) == len(REQUIRED_TOPICS) - 1


def test_ensure_raises_when_shopify_refuses_the_address(admin, shopify):
    with pytest.raises(AdminUserErrors) as raised:
        ensure_webhook_subscriptions(admin, "http://careloop.example.com/webhooks/shopify")
    assert raised.value.errors[0]["field"] == ["webhookSubscription", "uri"]
    assert shopify.subscriptions == {}


# --- shopify.app.toml ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_toml() -> dict:
    with (ROOT / "shopify.app.toml").open("rb") as handle:
        return tomllib.load(handle)


def test_app_toml_subscribes_every_handled_topic_and_the_compliance_ones(app_toml):
    subscriptions = app_toml["webhooks"]["subscriptions"]
    topics = [t for s in subscriptions for t in s.get("topics", [])]
    compliance = [t for s in subscriptions for t in s.get("compliance_topics", [])]
    assert sorted(topics) == sorted(TOPIC_ENUMS)  # no duplicates, none missing
    assert sorted(compliance) == sorted(COMPLIANCE_TOPICS)
    assert set(topics) | set(compliance) >= SUPPORTED_TOPICS


def test_app_toml_sends_webhooks_to_our_endpoint_in_the_version_we_parse(app_toml):
    assert app_toml["webhooks"]["api_version"] == Settings.shopify_api_version
    app_host = urlsplit(app_toml["application_url"]).netloc
    for subscription in app_toml["webhooks"]["subscriptions"]:
        uri = urlsplit(subscription["uri"])
        assert (uri.scheme, uri.netloc, uri.path) == ("https", app_host, "/webhooks/shopify")
    assert app_toml["embedded"] is True and app_toml["client_id"]


def test_app_toml_asks_for_the_scope_each_subscribed_topic_needs(app_toml):
    scopes = set(app_toml["access_scopes"]["scopes"].split(","))
    needs = {"orders/": "read_orders", "fulfillments/": "read_fulfillments",
             "fulfillment_events/": "read_fulfillments",
             "fulfillment_orders/": "read_merchant_managed_fulfillment_orders",
             "customers": "read_customers"}  # fmt: skip
    for topic in TOPIC_ENUMS:
        for prefix, scope in needs.items():
            if topic.startswith(prefix):
                assert scope in scopes, f"{topic} needs {scope}"
    # CareLoop only reads the shop, but for the birthday discount codes.
    assert {s for s in scopes if not s.startswith("read_")} == {"write_discounts"}
