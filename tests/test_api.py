"""The JSON API: orders with their story, order lists, dead letters and data
requests, always scoped to the shop whose bearer token is sent."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.models import InboxMessage, Order
from support import OTHER_SHOP_DOMAIN, load_fixture, with_changes

ORDER_ID = 5001001
CUSTOMER_ID = 7001001


def inbox_row(db, message_id: int) -> InboxMessage:
    with Session(db) as session:
        return session.get(InboxMessage, message_id)


def dead_letter(deliver, work, **options) -> None:
    """An orders/create without "id": processing dead-letters it at once."""
    payload = load_fixture("shopify", "orders_create")
    del payload["id"]
    assert deliver("orders/create", payload, **options).status_code == 200
    work()


def new_orders(deliver, work, count: int, **options) -> list[int]:
    """`count` distinct orders (ids 900001...), delivered and processed in order."""
    ids = [900001 + n for n in range(count)]
    for order_id in ids:
        payload = with_changes(
            load_fixture("shopify", "orders_create"), id=order_id, name=f"#{order_id}"
        )
        assert deliver("orders/create", payload, **options).status_code == 200
        work()
    return ids


# --- one order ------------------------------------------------------------


def test_order_shows_state_customer_shipments_and_timeline(shop, client, deliver, work):
    for topic, fixture in [
        ("orders/create", "orders_create"),
        ("orders/paid", "orders_paid"),
        ("fulfillments/create", "fulfillments_create"),
        ("fulfillments/update", "fulfillments_update"),
    ]:
        assert deliver(topic, fixture).status_code == 200
    assert work() == 4

    response = client.get(f"/api/v1/orders/{ORDER_ID}", headers=shop.auth)

    assert response.status_code == 200
    order = response.json
    assert (order["id"], order["name"], order["state"]) == (ORDER_ID, "#1001", "in_transit")
    assert (order["financial_status"], order["currency"], order["total_price"]) == (
        "paid",
        "EUR",
        "83.85",
    )
    assert order["email"] == "ana@example.com"
    customer = order["customer"]
    assert (customer["id"], customer["email"]) == (CUSTOMER_ID, "ana@example.com")
    assert (customer["first_name"], customer["last_name"]) == ("Ana", "García")
    assert customer["redacted"] is False
    [shipment] = order["shipments"]
    assert (shipment["id"], shipment["source"], shipment["status"]) == (
        "6001001",
        "shopify",
        "in_transit",
    )
    assert (shipment["carrier"], shipment["tracking_number"]) == ("UPS", "1Z999AA10123456784")
    timeline = [(e["kind"], e["from"], e["to"], e["cause"]) for e in order["timeline"]]
    assert timeline == [
        ("state", None, "pending", "shopify:orders/create"),
        ("state", "pending", "paid", "shopify:orders/paid"),
        ("shipment", None, "shipped", "shopify:fulfillments/create"),
        ("state", "paid", "fulfilled", "shopify:fulfillments/create"),
        ("shipment", "shipped", "in_transit", "shopify:fulfillments/update"),
        ("state", "fulfilled", "in_transit", "shopify:fulfillments/update"),
    ]
    assert [e["shipment"] for e in order["timeline"] if e["kind"] == "shipment"] == [
        "shopify:6001001",
        "shopify:6001001",
    ]


def test_unknown_order_is_404(shop, client):
    response = client.get(f"/api/v1/orders/{ORDER_ID}", headers=shop.auth)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_another_shops_token_gets_404_for_an_order_it_does_not_have(
    shop, other_shop, client, deliver, work
):
    deliver("orders/create", "orders_create")
    work()

    assert client.get(f"/api/v1/orders/{ORDER_ID}", headers=shop.auth).status_code == 200
    response = client.get(f"/api/v1/orders/{ORDER_ID}", headers=other_shop.auth)
    assert response.status_code == 404
    assert "Ana" not in response.get_data(as_text=True)


def test_two_shops_with_the_same_order_id_each_see_only_their_own(
    shop, other_shop, client, deliver, work
):
    deliver("orders/create", "orders_create")
    theirs = with_changes(
        load_fixture("shopify", "orders_create"),
        name="#OTHER-1",
        total_price="10.00",
        email="someone@example.org",
        customer=None,
    )
    deliver("orders/create", theirs, domain=OTHER_SHOP_DOMAIN)
    deliver("orders/paid", "orders_paid")  # only the first shop's order is paid
    work()

    mine = client.get(f"/api/v1/orders/{ORDER_ID}", headers=shop.auth).json
    other = client.get(f"/api/v1/orders/{ORDER_ID}", headers=other_shop.auth).json

    assert (mine["name"], mine["state"], mine["total_price"]) == ("#1001", "paid", "83.85")
    assert mine["customer"]["id"] == CUSTOMER_ID
    assert (other["name"], other["state"], other["total_price"]) == ("#OTHER-1", "pending", "10.00")
    assert (other["email"], other["customer"]) == ("someone@example.org", None)
    assert [e["to"] for e in other["timeline"]] == ["pending"]
    assert [
        o["name"] for o in client.get("/api/v1/orders", headers=other_shop.auth).json["orders"]
    ] == ["#OTHER-1"]


# --- authentication -------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": ""}, id="empty"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-token"),
        pytest.param({"Authorization": "Bearer "}, id="bearer-blank-token"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
        pytest.param({"Authorization": "Token clp_abc"}, id="other-scheme"),
        pytest.param({"Authorization": "clp_abc"}, id="no-scheme"),
        pytest.param({"Authorization": "Bearer clp_not-a-real-token"}, id="unknown-token"),
        pytest.param({"Authorization": "Bearer not-even-prefixed"}, id="unprefixed-token"),
    ],
)
def test_missing_malformed_or_unknown_token_is_401(shop, client, headers):
    for path in ("/api/v1/orders", f"/api/v1/orders/{ORDER_ID}", "/api/v1/inbox"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.json["error"]["code"] == "unauthorized"
    assert client.post("/api/v1/inbox/1/retry", headers=headers).status_code == 401
    assert client.get("/api/v1/data-requests", headers=headers).status_code == 401


def test_a_mangled_copy_of_a_valid_token_is_401(shop, client):
    for token in (shop.token[:-1], shop.token + "x", shop.token.upper()):
        response = client.get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_bearer_scheme_is_case_insensitive(shop, client):
    response = client.get("/api/v1/orders", headers={"Authorization": f"bearer {shop.token}"})
    assert response.status_code == 200


def test_uninstalled_shops_token_is_401(shop, other_shop, client, deliver, work):
    assert client.get("/api/v1/orders", headers=shop.auth).status_code == 200
    deliver("app/uninstalled", "app_uninstalled")
    work()

    response = client.get("/api/v1/orders", headers=shop.auth)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/orders", headers=other_shop.auth).status_code == 200


# --- order lists ----------------------------------------------------------


def list_orders(client, shop, **params):
    return client.get("/api/v1/orders", headers=shop.auth, query_string=params)


def test_order_list_is_empty_for_a_new_shop(shop, client):
    response = list_orders(client, shop)
    assert response.status_code == 200
    assert response.json == {"orders": [], "next_cursor": None}


def test_order_list_filters_by_state(shop, other_shop, client, deliver, work):
    pending, paid = new_orders(deliver, work, 2)
    deliver("orders/paid", with_changes(load_fixture("shopify", "orders_paid"), id=paid))
    new_orders(deliver, work, 1, domain=OTHER_SHOP_DOMAIN)  # a pending order elsewhere
    work()

    assert [o["id"] for o in list_orders(client, shop, state="paid").json["orders"]] == [paid]
    assert [o["id"] for o in list_orders(client, shop, state="pending").json["orders"]] == [pending]
    assert list_orders(client, shop, state="delivered").json["orders"] == []
    everything = list_orders(client, shop).json["orders"]
    assert [(o["id"], o["state"]) for o in everything] == [(paid, "paid"), (pending, "pending")]


def test_order_list_pages_with_limit_and_cursor(shop, other_shop, client, deliver, work):
    ids = new_orders(deliver, work, 5)
    new_orders(deliver, work, 2, domain=OTHER_SHOP_DOMAIN)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = list_orders(client, shop, **params)
        assert page.status_code == 200
        assert len(page.json["orders"]) <= 2
        seen += [o["id"] for o in page.json["orders"]]
        cursor, pages = page.json["next_cursor"], pages + 1
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"

    assert seen == ids[::-1]  # every order once, newest first, none of the other shop's
    assert pages == 3


def test_order_list_is_newest_first_and_new_orders_do_not_shift_the_pages(
    shop, client, deliver, work
):
    ids = new_orders(deliver, work, 3)
    first = list_orders(client, shop, limit=2).json
    assert [o["id"] for o in first["orders"]] == [ids[2], ids[1]]

    newer = 900101
    payload = with_changes(load_fixture("shopify", "orders_create"), id=newer, name="#900101")
    deliver("orders/create", payload)
    work()
    rest = list_orders(client, shop, limit=2, cursor=first["next_cursor"]).json

    assert [o["id"] for o in rest["orders"]] == [ids[0]]  # nothing seen twice, nothing missed
    assert list_orders(client, shop, limit=1).json["orders"][0]["id"] == newer


def test_order_list_cursor_combines_with_state_filter(shop, client, deliver, work):
    ids = new_orders(deliver, work, 4)
    for order_id in ids[1:]:
        deliver("orders/paid", with_changes(load_fixture("shopify", "orders_paid"), id=order_id))
    work()

    first = list_orders(client, shop, state="paid", limit=2).json
    assert [o["id"] for o in first["orders"]] == [ids[3], ids[2]]
    second = list_orders(client, shop, state="paid", limit=2, cursor=first["next_cursor"]).json
    assert [o["id"] for o in second["orders"]] == [ids[1]]
    assert second["next_cursor"] is None


def test_order_list_limit_goes_up_to_two_hundred(shop, client, db, clock):
    with Session(db) as session:  # more orders than one page holds
        session.add_all(
            Order(shop_id=shop.id, shopify_id=5_100_000 + n, state="paid",
                  state_changed_at=clock.now(), created_at=clock.now())
            for n in range(201)
        )  # fmt: skip
        session.commit()

    assert len(list_orders(client, shop).json["orders"]) == 50  # the default
    page = list_orders(client, shop, limit=200)
    assert page.status_code == 200 and len(page.json["orders"]) == 200
    assert page.json["next_cursor"] is not None
    assert list_orders(client, shop, limit=201).status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"state": "bogus"},
        {"state": "PAID"},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"limit": "201"},
        {"cursor": "0"},
        {"cursor": "abc"},
        {"cursor": "-5"},
        {"cursor": str(2**62 + 1)},
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_order_list_refuses_bad_state_limit_or_cursor_with_400(shop, client, params):
    response = list_orders(client, shop, **params)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request"
    assert next(iter(params)) in response.json["error"]["message"]


@pytest.mark.parametrize("raw", ["²", "1" * 5000], ids=["superscript-two", "5000-digits"])
@pytest.mark.parametrize("name", ["limit", "cursor"])
def test_order_list_refuses_digit_like_values_that_are_not_numbers_with_400(
    shop, client, name, raw
):
    response = list_orders(client, shop, **{name: raw})
    assert response.status_code == 400


# --- dead letters ---------------------------------------------------------


def test_inbox_dead_shows_this_shops_dead_letter_and_never_another_shops(
    shop, other_shop, client, deliver, work, db
):
    dead_letter(deliver, work, webhook_id="mine")
    dead_letter(deliver, work, webhook_id="theirs", domain=OTHER_SHOP_DOMAIN)
    deliver("orders/create", "orders_create")  # a healthy one, done
    work()

    response = client.get("/api/v1/inbox?status=dead", headers=shop.auth)

    assert response.status_code == 200
    [message] = response.json["messages"]
    assert (message["source"], message["topic"], message["status"]) == (
        "shopify",
        "orders/create",
        "dead",
    )
    assert message["attempts"] == 1
    assert message["last_error"].startswith("PayloadError")
    assert inbox_row(db, message["id"]).shop_id == shop.id
    [theirs] = client.get("/api/v1/inbox?status=dead", headers=other_shop.auth).json["messages"]
    assert theirs["id"] != message["id"]
    assert inbox_row(db, theirs["id"]).shop_id == other_shop.id


def test_inbox_defaults_to_dead_and_lists_other_statuses_on_request(shop, client, deliver, work):
    dead_letter(deliver, work)
    deliver("orders/create", "orders_create")
    work()
    deliver("orders/paid", "orders_paid")  # stays pending

    def topics(query: str) -> list[str]:
        response = client.get(f"/api/v1/inbox{query}", headers=shop.auth)
        assert response.status_code == 200
        return [m["topic"] for m in response.json["messages"]]

    assert topics("") == ["orders/create"]
    assert topics("?status=done") == ["orders/create"]
    assert topics("?status=pending") == ["orders/paid"]
    assert client.get("/api/v1/inbox?status=lost", headers=shop.auth).status_code == 400
    assert client.get("/api/v1/inbox?limit=0", headers=shop.auth).status_code == 400


def test_retry_requeues_a_dead_letter(shop, client, deliver, work, db, clock):
    dead_letter(deliver, work)
    [message] = client.get("/api/v1/inbox?status=dead", headers=shop.auth).json["messages"]
    clock.advance(minutes=5)

    response = client.post(f"/api/v1/inbox/{message['id']}/retry", headers=shop.auth)

    assert response.status_code == 200
    assert response.json == {"status": "queued", "id": message["id"]}
    row = inbox_row(db, message["id"])
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, clock.now())
    assert client.get("/api/v1/inbox?status=dead", headers=shop.auth).json["messages"] == []
    assert work() == 1  # due at once; the payload is still bad, so it is dead again
    assert inbox_row(db, message["id"]).status == "dead"


def test_retry_of_another_shops_dead_letter_is_404_and_changes_nothing(
    shop, other_shop, client, deliver, work, db
):
    dead_letter(deliver, work)
    [message] = client.get("/api/v1/inbox?status=dead", headers=shop.auth).json["messages"]

    response = client.post(f"/api/v1/inbox/{message['id']}/retry", headers=other_shop.auth)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert inbox_row(db, message["id"]).status == "dead"


def test_retry_of_a_message_that_is_not_dead_is_404(shop, client, deliver, work, db):
    deliver("orders/create", "orders_create")
    work()
    deliver("orders/paid", "orders_paid")
    done, pending = (
        client.get(f"/api/v1/inbox?status={status}", headers=shop.auth).json["messages"][0]["id"]
        for status in ("done", "pending")
    )

    for message_id in (done, pending, 999999):
        response = client.post(f"/api/v1/inbox/{message_id}/retry", headers=shop.auth)
        assert response.status_code == 404, message_id
    assert (inbox_row(db, done).status, inbox_row(db, pending).status) == ("done", "pending")


# --- data requests --------------------------------------------------------


def test_data_request_shows_the_customers_export_to_their_shop_only(
    shop, other_shop, client, deliver, work
):
    deliver("orders/create", "orders_create")
    deliver("orders/paid", "orders_paid")
    work()
    deliver("customers/data_request", "customers_data_request")
    work()

    response = client.get("/api/v1/data-requests", headers=shop.auth)

    assert response.status_code == 200
    [request] = response.json["data_requests"]
    assert (request["shopify_request_id"], request["customer_id"]) == (3001001, CUSTOMER_ID)
    export = request["export"]
    assert export["customer"]["shopify_id"] == CUSTOMER_ID
    assert export["customer"]["email"] == "ana@example.com"
    assert [(o["shopify_id"], o["financial_status"]) for o in export["orders"]] == [
        (ORDER_ID, "paid")
    ]
    assert client.get("/api/v1/data-requests", headers=other_shop.auth).json == {
        "data_requests": []
    }


def test_each_shop_sees_only_its_own_data_requests(shop, other_shop, client, deliver, work):
    deliver("orders/create", "orders_create")
    work()
    deliver("customers/data_request", "customers_data_request")
    theirs = load_fixture("shopify", "customers_data_request")
    theirs["data_request"] = {"id": 3009999}
    deliver("customers/data_request", theirs, domain=OTHER_SHOP_DOMAIN)
    work()

    [mine] = client.get("/api/v1/data-requests", headers=shop.auth).json["data_requests"]
    [other] = client.get("/api/v1/data-requests", headers=other_shop.auth).json["data_requests"]

    assert mine["shopify_request_id"] == 3001001
    assert mine["export"]["customer"]["email"] == "ana@example.com"
    assert other["shopify_request_id"] == 3009999
    # The other shop never had this customer or order: nothing of ours leaks into its export.
    assert other["export"] == {"customer": None, "orders": [], "shipments": []}
