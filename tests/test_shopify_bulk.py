"""Bulk exports against the Shopify stand-in: starting and polling an
operation (statuses, object count, url, the concurrency limit of each API
version, the one-root rule that splits customers from orders); turning each
JSONL record shape into domain events (gids into ids, GraphQL enums into the
REST words the state machine uses); and streaming the result file: resuming
from a line, naming the line that cannot be read, and reading 100,000 orders
in bounded memory.

Records follow the fixture story of tests/fixtures/shopify/README.md: Ana
García (7001001), order #1001 (5001001), fulfillments 6001001 and 6001002.
"""

from __future__ import annotations

import json
import re
import tracemalloc
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import requests
from shopify_standin import ManualTime, ShopifyStandIn, serve

from app.customers import birth_date
from app.events import CustomerSnapshot, OrderSnapshot, PayloadError, ShipmentSnapshot
from app.order_state import OrderFacts, OrderState, ShipmentStatus, derive_state
from integrations.shopify_admin import AdminClient, AdminError, AdminUserErrors
from integrations.shopify_bulk import (
    BULK_QUERIES,
    MAX_LINE_BYTES,
    STEP_NAMES,
    BulkLineError,
    parse_record,
    records,
    start,
    status,
    step_query,
)
from support import SHOP_DOMAIN

TOKEN = "shpat_0123456789abcdef0123456789abcdef"
VERSION = "2026-07"
CUSTOMERS, ORDERS = BULK_QUERIES


@pytest.fixture
def manual() -> ManualTime:
    return ManualTime()


@pytest.fixture
def shopify(manual):
    """The stand-in, serving; `shopify.url` is its base URL."""
    standin = ShopifyStandIn(valid_tokens={TOKEN}, clock=manual.now)
    with serve(standin) as url:
        standin.url = url
        yield standin


def admin_client(shopify, manual, version: str = VERSION) -> AdminClient:
    return AdminClient(
        SHOP_DOMAIN, TOKEN, version, base_url=shopify.url, timeout_seconds=5,
        sleep=manual.sleep, monotonic=manual.now,
    )  # fmt: skip


@pytest.fixture
def admin(shopify, manual) -> AdminClient:
    return admin_client(shopify, manual)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def fulfillment_record(**changes) -> dict:
    """A Fulfillment as `Order.fulfillments` selects it in ORDERS."""
    return {
        "id": "gid://shopify/Fulfillment/6001001",
        "status": "SUCCESS",
        "displayStatus": "IN_TRANSIT",
        "createdAt": "2026-11-21T08:00:00Z",
        "updatedAt": "2026-11-21T09:30:00Z",
        "deliveredAt": None,
        "estimatedDeliveryAt": "2026-11-24T18:00:00Z",
        "trackingInfo": [
            {
                "company": "UPS",
                "number": "1Z999AA10123456784",
                "url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
            }
        ],
        **changes,
    }


def order_record(**changes) -> dict:
    """An Order line of the ORDERS export."""
    return {
        "id": "gid://shopify/Order/5001001",
        "name": "#1001",
        "createdAt": "2026-11-20T09:00:00Z",
        "updatedAt": "2026-11-21T11:00:00Z",
        "cancelledAt": None,
        "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "FULFILLED",
        "currencyCode": "EUR",
        "totalPriceSet": {"shopMoney": {"amount": "83.85"}},
        "email": "ana@example.com",
        "phone": None,
        "customerLocale": "es",
        "customer": {"id": "gid://shopify/Customer/7001001", "updatedAt": "2026-11-20T08:58:00Z"},
        "fulfillments": [
            fulfillment_record(),
            fulfillment_record(
                id="gid://shopify/Fulfillment/6001002",
                displayStatus="DELIVERED",
                updatedAt="2026-11-21T10:45:00Z",
                deliveredAt="2026-11-21T10:40:00Z",
                trackingInfo=[{"company": "UPS", "number": "1Z999AA10123456795", "url": None}],
            ),
        ],
        **changes,
    }


def customer_record(**changes) -> dict:
    """A Customer line of the CUSTOMERS export."""
    return {
        "id": "gid://shopify/Customer/7001001",
        "firstName": "Ana",
        "lastName": "García",
        "locale": "es",
        "createdAt": "2026-11-20T08:55:00Z",
        "updatedAt": "2026-11-23T08:15:00Z",
        "defaultEmailAddress": {
            "emailAddress": "ana@example.com",
            "marketingState": "SUBSCRIBED",
            "marketingUpdatedAt": "2026-11-20T08:58:00Z",
        },
        "defaultPhoneNumber": {
            "phoneNumber": "+34699887766",
            "marketingState": "NOT_SUBSCRIBED",
            "marketingUpdatedAt": None,
        },
        "metafield": {"namespace": "facts", "key": "birth_date", "value": "1990-05-17"},
        **changes,
    }


def line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)


def completed_file(admin, shopify, lines, query: str = CUSTOMERS) -> str:
    """Run an export whose file holds `lines`; returns the file's url."""
    operation = start(admin, query)
    shopify.complete_bulk(lines, operation)
    return status(admin, operation).url


# --- starting and polling -----------------------------------------------------------


def test_an_export_is_polled_from_created_through_running_to_completed(admin, shopify):
    operation = start(admin, CUSTOMERS)
    assert operation.startswith("gid://shopify/BulkOperation/")
    assert shopify.bulk_operations[operation]["query"] == CUSTOMERS

    created = status(admin, operation)
    assert (created.id, created.status, created.object_count) == (operation, "CREATED", 0)
    assert (created.url, created.finished) == (None, False)

    shopify.progress_bulk(1, operation)
    running = status(admin, operation)
    assert (running.status, running.object_count, running.finished) == ("RUNNING", 1, False)

    other = line(customer_record(id="gid://shopify/Customer/7001002"))
    shopify.complete_bulk([line(customer_record()), other], operation)
    done = status(admin, operation)
    assert (done.status, done.object_count, done.error_code) == ("COMPLETED", 2, None)
    assert done.finished and done.url.startswith(f"{shopify.url}/")
    ids = [event.shopify_id for _, events in records(done.url) for event in events]
    assert ids == [7001001, 7001002]
    assert shopify.graphql_calls() == ["bulkOperationRunQuery", "node", "node", "node"]


def test_before_2026_01_a_second_export_while_one_runs_is_refused(shopify, manual):
    client = admin_client(shopify, manual, version="2025-10")
    first = start(client, CUSTOMERS)
    with pytest.raises(AdminUserErrors) as raised:
        start(client, ORDERS)
    [error] = raised.value.errors
    assert error["code"] == "OPERATION_IN_PROGRESS"
    assert "already in progress" in error["message"] and first in error["message"]
    assert first in str(raised.value)
    assert list(shopify.bulk_operations) == [first]

    shopify.complete_bulk([], first)
    assert start(client, ORDERS) != first  # the next one may start once it has finished


def test_api_2026_07_runs_five_exports_at_once_and_refuses_a_sixth(admin, shopify):
    running = [start(admin, BULK_QUERIES[n % 2]) for n in range(5)]
    assert len(set(running)) == 5
    with pytest.raises(AdminUserErrors) as raised:
        start(admin, CUSTOMERS)
    [error] = raised.value.errors
    assert error["code"] == "OPERATION_IN_PROGRESS"
    assert all(operation in error["message"] for operation in running)
    assert len(shopify.bulk_operations) == 5


def test_customers_and_orders_are_two_exports_customers_first(admin, shopify):
    both = "{ customers { edges { node { id } } } orders { edges { node { id } } } }"
    with pytest.raises(AdminUserErrors) as raised:
        start(admin, both)
    assert raised.value.errors[0]["code"] == "INVALID"
    assert shopify.bulk_operations == {}

    started = [start(admin, query) for query in BULK_QUERIES]  # each is accepted alone
    assert list(shopify.bulk_operations) == started
    assert STEP_NAMES == ("customers", "orders")
    for name, query in zip(STEP_NAMES, BULK_QUERIES, strict=True):
        assert re.match(rf"\s*\{{\s*{name}\s*\{{", query)
    # The root connection each; orders nest one more, their fulfillment
    # orders, whose lines come as children with `__parentId`.
    assert [query.count("edges") for query in BULK_QUERIES] == [1, 2]


def test_a_failed_export_reports_its_error_code_and_partial_data(admin, shopify):
    operation = start(admin, ORDERS)
    shopify.fail_bulk("TIMEOUT", operation, partial_lines=[line(order_record())])
    failed = status(admin, operation)
    assert (failed.status, failed.error_code, failed.url) == ("FAILED", "TIMEOUT", None)
    assert failed.finished
    [(number, [order])] = list(records(failed.partial_data_url))
    assert (number, order.shopify_id) == (0, 5001001)


def test_polling_an_operation_shopify_does_not_know_raises_admin_error(admin):
    with pytest.raises(AdminError, match="BulkOperation/404"):
        status(admin, "gid://shopify/BulkOperation/404")


# --- record shapes --------------------------------------------------------------------


def test_an_order_line_becomes_the_order_its_fulfillments_and_its_customer():
    [order] = parse_record(order_record())
    assert isinstance(order, OrderSnapshot)
    assert (order.shopify_id, order.name, order.currency) == (5001001, "#1001", "EUR")
    assert (order.financial_status, order.fulfillment_status) == ("paid", "fulfilled")
    assert order.total_price == Decimal("83.85")
    assert (order.created_at, order.updated_at) == (
        at("2026-11-20T09:00:00+00:00"),
        at("2026-11-21T11:00:00+00:00"),
    )
    assert (order.email, order.phone, order.cancelled_at) == ("ana@example.com", None, None)
    # Only what the order knows of its customer, stamped with the customer's version.
    assert order.customer == CustomerSnapshot(
        7001001, at("2026-11-20T08:58:00+00:00"), {"locale": "es"}, complete=False
    )
    first, second = order.shipments
    assert first == ShipmentSnapshot(
        source="shopify",
        external_id="6001001",
        status=ShipmentStatus.IN_TRANSIT,
        updated_at=at("2026-11-21T09:30:00+00:00"),
        order_shopify_id=5001001,
        carrier="UPS",
        tracking_number="1Z999AA10123456784",
        tracking_url="https://www.ups.com/track?tracknum=1Z999AA10123456784",
        shipped_at=at("2026-11-21T08:00:00+00:00"),
        estimated_delivery_at=at("2026-11-24T18:00:00+00:00"),
    )
    assert (second.external_id, second.status) == ("6001002", ShipmentStatus.DELIVERED)
    assert second.delivered_at == at("2026-11-21T10:40:00+00:00")
    assert (second.tracking_number, second.tracking_url) == ("1Z999AA10123456795", None)
    facts = OrderFacts(order.financial_status, order.fulfillment_status, order.cancelled_at)
    assert derive_state(facts, [s.status for s in order.shipments]) is OrderState.IN_TRANSIT


def test_a_cancelled_refunded_order_reads_as_cancelled_then_refunded():
    cancelled = fulfillment_record(status="CANCELLED", displayStatus="CANCELED")
    [order] = parse_record(
        order_record(
            cancelledAt="2026-11-22T07:00:00Z",
            displayFinancialStatus="REFUNDED",
            displayFulfillmentStatus="UNFULFILLED",
            fulfillments=[cancelled],
        )
    )
    assert (order.financial_status, order.fulfillment_status) == ("refunded", None)
    assert order.cancelled_at == at("2026-11-22T07:00:00+00:00")
    assert [s.status for s in order.shipments] == [ShipmentStatus.CANCELLED]
    shipments = [s.status for s in order.shipments]
    facts = OrderFacts(order.financial_status, order.fulfillment_status, order.cancelled_at)
    assert derive_state(facts, shipments) is OrderState.CANCELLED
    uncancelled = OrderFacts(order.financial_status, order.fulfillment_status, None)
    assert derive_state(uncancelled, shipments) is OrderState.REFUNDED


def test_an_order_without_customer_or_fulfillments_has_none():
    [order] = parse_record(order_record(customer=None, fulfillments=[], totalPriceSet=None))
    assert (order.customer, order.shipments, order.total_price) == (None, (), None)


@pytest.mark.parametrize(
    ("display", "rest"),
    [
        ("AUTHORIZED", "authorized"),
        ("EXPIRED", "expired"),
        ("PAID", "paid"),
        ("PARTIALLY_PAID", "partially_paid"),
        ("PARTIALLY_REFUNDED", "partially_refunded"),
        ("PENDING", "pending"),
        ("REFUNDED", "refunded"),
        ("VOIDED", "voided"),
        (None, None),
    ],
)
def test_financial_statuses_become_the_rest_words(display, rest):
    [order] = parse_record(order_record(displayFinancialStatus=display))
    assert order.financial_status == rest


@pytest.mark.parametrize(
    ("display", "rest"),
    [
        ("FULFILLED", "fulfilled"),
        ("PARTIALLY_FULFILLED", "partial"),
        ("RESTOCKED", "restocked"),
        ("UNFULFILLED", None),
        ("IN_PROGRESS", None),
        ("ON_HOLD", None),
        ("OPEN", None),
        ("PENDING_FULFILLMENT", None),
        ("REQUEST_DECLINED", None),
        ("SCHEDULED", None),
    ],
)
def test_fulfillment_statuses_become_the_rest_words(display, rest):
    [order] = parse_record(order_record(displayFulfillmentStatus=display))
    assert order.fulfillment_status == rest


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("ATTEMPTED_DELIVERY", ShipmentStatus.ATTEMPTED),
        ("CANCELED", ShipmentStatus.CANCELLED),
        ("CARRIER_PICKED_UP", ShipmentStatus.IN_TRANSIT),
        ("CONFIRMED", ShipmentStatus.SHIPPED),
        ("DELAYED", ShipmentStatus.IN_TRANSIT),
        ("DELIVERED", ShipmentStatus.DELIVERED),
        ("FAILURE", ShipmentStatus.EXCEPTION),
        ("FULFILLED", ShipmentStatus.SHIPPED),
        ("IN_TRANSIT", ShipmentStatus.IN_TRANSIT),
        ("LABEL_PRINTED", ShipmentStatus.LABEL_CREATED),
        ("LABEL_PURCHASED", ShipmentStatus.LABEL_CREATED),
        ("LABEL_VOIDED", ShipmentStatus.CANCELLED),
        ("MARKED_AS_FULFILLED", ShipmentStatus.SHIPPED),
        ("NOT_DELIVERED", ShipmentStatus.EXCEPTION),
        ("OUT_FOR_DELIVERY", ShipmentStatus.OUT_FOR_DELIVERY),
        ("PICKED_UP", ShipmentStatus.DELIVERED),
        ("READY_FOR_PICKUP", ShipmentStatus.AVAILABLE_FOR_PICKUP),
        ("SUBMITTED", ShipmentStatus.LABEL_CREATED),
        (None, ShipmentStatus.SHIPPED),
    ],
)
def test_every_fulfillment_display_status_maps_to_a_shipment_status(display, expected):
    [order] = parse_record(order_record(fulfillments=[fulfillment_record(displayStatus=display)]))
    assert order.shipments[0].status is expected


@pytest.mark.parametrize(
    ("own", "display", "expected"),
    [
        ("CANCELLED", "DELIVERED", ShipmentStatus.CANCELLED),
        ("ERROR", "IN_TRANSIT", ShipmentStatus.CANCELLED),
        ("FAILURE", "SUBMITTED", ShipmentStatus.CANCELLED),
        ("PENDING", "DELAYED", ShipmentStatus.LABEL_CREATED),
        ("OPEN", None, ShipmentStatus.LABEL_CREATED),
    ],
)
def test_a_fulfillments_own_status_outranks_its_display_status(own, display, expected):
    record = fulfillment_record(status=own, displayStatus=display)
    [order] = parse_record(order_record(fulfillments=[record]))
    assert order.shipments[0].status is expected


def test_a_customer_line_carries_contact_consent_and_birth_date():
    [customer] = parse_record(customer_record())
    assert customer == CustomerSnapshot(
        7001001,
        at("2026-11-23T08:15:00+00:00"),
        {
            "email": "ana@example.com",
            "phone": "+34699887766",
            "first_name": "Ana",
            "last_name": "García",
            "locale": "es",
            "shopify_created_at": at("2026-11-20T08:55:00+00:00"),
            "email_consent": "subscribed",
            "email_consent_updated_at": at("2026-11-20T08:58:00+00:00"),
            "sms_consent": "not_subscribed",
            "sms_consent_updated_at": None,
        },
        metafields={"facts.birth_date": "1990-05-17"},
    )


def test_a_customer_without_metafield_or_contact_has_them_blank_and_no_consent():
    record = customer_record(metafield=None, defaultEmailAddress=None, defaultPhoneNumber=None)
    [customer] = parse_record(record)
    attributes = customer.attributes
    assert customer.metafields == {}  # asked for, and none: no birth date
    assert (attributes["email"], attributes["phone"]) == (None,) * 2
    # Consent is left to what the consent webhooks said.
    assert not {"email_consent", "sms_consent"} & set(attributes)
    assert attributes["first_name"] == "Ana"


@pytest.mark.parametrize("value", ["17/05/1990", "1990-02-30", "", "1990-5-17", None, 19900517])
def test_a_birth_date_that_is_not_a_date_is_taken_as_absent(value):
    assert birth_date(value) is None
    assert birth_date("1990-05-17") == date(1990, 5, 17)


def test_gids_become_the_numeric_ids_the_rest_api_uses():
    big = 2**53 + 1  # beyond a float's exact integers
    record = order_record(
        id=f"gid://shopify/Order/{big}",
        customer={"id": "gid://shopify/Customer/42", "updatedAt": "2026-11-20T08:58:00Z"},
        fulfillments=[fulfillment_record(id="gid://shopify/Fulfillment/9007199254740993")],
    )
    [order] = parse_record(record)
    assert (order.shopify_id, order.customer.shopify_id) == (big, 42)
    shipment = order.shipments[0]
    assert (shipment.external_id, shipment.order_shopify_id) == ("9007199254740993", big)


@pytest.mark.parametrize(
    "record",
    [
        {"id": "gid://shopify/Product/1", "title": "Sérum Vitamina C"},
        {"id": "5001001"},
        {"id": "gid://shopify/Fulfillment/1", "__parentId": "gid://shopify/Order/1"},
        order_record(updatedAt=None),
        order_record(customer={"id": "gid://shopify/Customer/1"}),
        order_record(fulfillments=[fulfillment_record(updatedAt=None)]),
        order_record(totalPriceSet={"shopMoney": {"amount": "eighty"}}),
        customer_record(updatedAt=None, createdAt=None),
        ["gid://shopify/Order/1"],
    ],
)
def test_records_we_cannot_interpret_raise_payload_error(record):
    with pytest.raises(PayloadError):
        parse_record(record)


# --- the file -------------------------------------------------------------------------


def test_records_resume_from_start_line_and_never_send_the_token(admin, shopify):
    lines = [line(customer_record(id=f"gid://shopify/Customer/{n}")) for n in range(1, 6)]
    lines.insert(2, "")  # a blank line keeps its number and carries nothing
    url = completed_file(admin, shopify, lines)

    everything = list(records(url))
    assert [number for number, _ in everything] == [0, 1, 2, 3, 4, 5]
    assert everything[2] == (2, [])
    assert [e[0].shopify_id for _, e in everything if e] == [1, 2, 3, 4, 5]
    assert list(records(url, start_line=4)) == everything[4:]
    assert list(records(url, start_line=6)) == []

    downloads = [r for r in shopify.requests if r.path.startswith("/bulk-results/")]
    assert len(downloads) == 3
    assert not any("X-Shopify-Access-Token" in r.headers for r in downloads)


@pytest.mark.parametrize(
    "bad",
    ['{"id": "gid://shopify/Customer/3", "updatedAt": ', line(order_record(updatedAt=None))],
    ids=["not JSON", "not a record"],
)
def test_a_line_that_cannot_be_read_comes_as_its_error_and_the_stream_goes_on(admin, shopify, bad):
    lines = [line(customer_record()), line(order_record()), bad, line(customer_record())]
    url = completed_file(admin, shopify, lines)
    [first, second, (number, error), fourth] = list(records(url))
    assert (first[0], second[0], number, fourth[0]) == (0, 1, 2, 3)
    assert isinstance(error, BulkLineError) and isinstance(error, PayloadError)
    assert error.line_number == 2 and "line 2" in str(error)
    assert error.line == bad.encode()  # kept for whoever looks into it
    assert fourth[1][0].shopify_id == first[1][0].shopify_id
    # Skipping it (start_line) reads past it without parsing it.
    assert [number for number, _ in records(url, start_line=3)] == [3]
    downloads = [r for r in shopify.requests if r.path.startswith("/bulk-results/")]
    assert len(downloads) == 2


def test_a_line_over_the_length_bound_is_an_error_and_the_next_line_is_read(admin, shopify):
    huge = '{"id": "gid://shopify/Customer/9", "x": "' + "y" * (MAX_LINE_BYTES + 1) + '"}'
    lines = [line(customer_record()), huge, line(order_record())]
    url = completed_file(admin, shopify, lines)
    [(_, first), (number, error), (_, last)] = list(records(url))
    assert isinstance(error, BulkLineError) and number == 1 and "longer than" in str(error)
    assert [type(e).__name__ for e in first + last] == ["CustomerSnapshot", "OrderSnapshot"]


def test_a_file_that_is_gone_raises_http_error(shopify):
    with pytest.raises(requests.HTTPError, match="404"):
        list(records(f"{shopify.url}/bulk-results/404.jsonl"))


def orders_file(count: int):
    """`count` order lines, each made when it is sent: a callable that
    generates the file afresh, never a list of it."""
    head, tail = line(order_record()).split("gid://shopify/Order/5001001")

    def lines():
        for number in range(count):
            yield f"{head}gid://shopify/Order/{6_000_000 + number}{tail}"

    return lines


def streamed_peak(url: str) -> tuple[int, int, int]:
    """(lines, last order id, peak traced bytes) of reading every record,
    the stand-in's side of the stream included."""
    lines = last = 0
    tracemalloc.start()
    try:
        for _, events in records(url):
            lines += 1
            last = events[0].shopify_id
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return lines, last, peak


def test_a_100000_order_file_streams_in_bounded_memory(admin, shopify):
    small_url = completed_file(admin, shopify, orders_file(10_000), ORDERS)
    large = start(admin, ORDERS)
    shopify.complete_bulk(orders_file(100_000), large)
    large_url = status(admin, large).url
    large_size = int(shopify.bulk_operations[large]["fileSize"])
    # Warm up, and let the stand-in settle: werkzeug's server reads up to 10 MB
    # after each answer to drain the socket, which after an Admin API call would
    # land in the measurement. After a whole download it does not.
    list(records(small_url, start_line=9_900))

    small_lines, _, small_peak = streamed_peak(small_url)
    large_lines, last, large_peak = streamed_peak(large_url)

    assert (small_lines, large_lines) == (10_000, 100_000)
    assert last == 6_000_000 + 99_999  # every line, in order, none invented
    mib = 1024 * 1024
    assert large_size > 50 * mib
    assert large_peak < 4 * mib, f"peak {large_peak / mib:.1f} MiB"
    # Ten times the lines, not ten times the memory: growth well under proportional.
    assert large_peak < 2 * small_peak, f"{small_peak=} {large_peak=}"


def test_the_customers_export_asks_for_the_shops_own_birth_date_metafield():
    query = step_query(0, "custom", "dob")
    assert 'metafield(namespace: "custom", key: "dob") { namespace key value }' in query
    assert step_query(1, "custom", "dob") == BULK_QUERIES[1]
