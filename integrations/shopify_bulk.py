"""Shopify bulk query operations: a shop's customers and orders from before
the install, exported by Shopify as JSONL and streamed into domain events.

Facts relied on (stored copies of shopify.dev read late 2026, API 2026-07):

- `bulkOperationRunQuery(query: String!, groupObjects: Boolean! = false)`
  returns `{bulkOperation, userErrors: [BulkOperationUserError]}`, the errors
  carrying `field`, `message` and a `code` of `INVALID`, `LIMIT_REACHED` or
  `OPERATION_IN_PROGRESS` (GraphQL Admin reference: bulkOperationRunQuery,
  BulkOperationRunQueryPayload, BulkOperationUserErrorCode). "The query must
  include at least one connection field and supports up to five connections
  with a maximum nesting depth of two levels."
- "The GraphQL Admin API supports querying a single top-level field" per bulk
  query ("Perform bulk operations with the GraphQL Admin API",
  https://shopify.dev/docs/api/usage/bulk-operations/queries). Customers and
  orders are two roots, so they are two queries: see `BULK_QUERIES`.
- Concurrency: "In API versions 2026-01 and higher, you can run up to five bulk
  query operations at a time per shop. In API versions prior to 2026-01, you
  can run only one bulk operation of each type" (same guide; changelog
  "Faster bulk operations", 2025-12-15, effective 2026-01). Some 2026-07
  reference pages still carry the old one-at-a-time sentence. Past the limit
  Shopify answers the userError "A bulk query operation for this app and shop
  is already in progress: gid://shopify/BulkOperation/..." (code
  OPERATION_IN_PROGRESS; wording as logged by public clients, e.g.
  estuary/connectors source-shopify-native). `start` raises it as
  `AdminUserErrors`.
- Polling: `node(id:) { ... on BulkOperation { id status errorCode objectCount
  url partialDataUrl } }`. `currentBulkOperation` is deprecated in the 2026
  versions ("Use bulkOperations with status filter instead") and only knows
  the most recent operation; asking for our id by `node` works in every
  version. `BulkOperationStatus` is CREATED, RUNNING, COMPLETED, FAILED,
  CANCELING, CANCELED or EXPIRED ("The bulk operation URL has expired");
  `BulkOperationErrorCode` is ACCESS_DENIED, INTERNAL_SERVER_ERROR or TIMEOUT.
  `objectCount` is an UnsignedInt64, which GraphQL sends as a string; it
  counts every object, nested ones too. `url` and `partialDataUrl` expire
  seven days after the operation ends.
- The result is JSONL, one object per line. A nested *connection* is not
  nested in the output: each of its nodes becomes a line of its own with
  `__parentId` naming the parent's gid (the guide's JSONL example;
  Shopify/shopify-api-ruby#729). `groupObjects` defaults to false since
  2026-01 ("Bulk operations groupObjects default changed to false"). Our
  queries select lists and single objects only, never a nested connection, so
  every line is one whole Customer or Order.
- Field facts, 2026-07: `Order.fulfillments(first: Int)` is a plain list
  `[Fulfillment!]!` (the only field using FulfillmentConnection is
  FulfillmentOrder.fulfillments), and so is `Fulfillment.trackingInfo`
  (`[FulfillmentTrackingInfo!]!` with company, number, url). Fulfillment has
  status (FulfillmentStatus: CANCELLED, ERROR, FAILURE, SUCCESS, and the
  deprecated OPEN and PENDING), displayStatus (FulfillmentDisplayStatus, see
  `_DISPLAY_STATUS`), createdAt, updatedAt, deliveredAt, estimatedDeliveryAt.
  On Customer, `email`, `phone`, `emailMarketingConsent` and
  `smsMarketingConsent` are deprecated for `defaultEmailAddress {emailAddress
  marketingState marketingUpdatedAt}` and `defaultPhoneNumber {phoneNumber
  marketingState marketingUpdatedAt}`. In 2026-07 the `marketing*` fields of
  CustomerPhoneNumber are themselves deprecated too; their successor
  (`smsMarketingConsent` on the phone number) is documented for 2027-01, so
  for now the deprecated fields are the ones that certainly exist. `locale` is
  `String!`. `facts.birth_date` is Shopify's standard customer metafield for a
  birthday (a `date` metafield, value `YYYY-MM-DD`).
- The promise: `Order.fulfillmentOrders` is a connection of FulfillmentOrder
  with `status` (FulfillmentOrderStatus: OPEN, IN_PROGRESS, SCHEDULED,
  ON_HOLD, INCOMPLETE, CLOSED, CANCELLED), `updatedAt`, `fulfillBy` ("the
  latest date and time by which all items in the fulfillment order need to
  be fulfilled"), `fulfillAt`, `deliveryMethod {minDeliveryDateTime
  maxDeliveryDateTime}` (the window shown at checkout) and
  `fulfillmentHolds {reason}` (FulfillmentHoldReason). Reading them needs
  read_merchant_managed_fulfillment_orders (and the third-party / assigned
  scopes for orders routed to a fulfillment service). In a bulk export a
  nested connection's nodes are lines of their own with `__parentId` (the
  order's gid), which is how a FulfillmentOrder line names its order.
- Only the last 60 days of orders are visible without `read_all_orders`
  (Order object reference); shopify.app.toml asks for it.
- Protected customer data: names, email and phone need level-2 access, as for
  the webhooks.

The file URL is a signed storage URL on another host: it is fetched with a
plain session, never with the Admin API token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson
import requests

from app.clock import parse_timestamp
from app.events import (
    CustomerSnapshot,
    Event,
    FulfillmentOrderSnapshot,
    OrderSnapshot,
    PayloadError,
    ShipmentSnapshot,
    ShipmentStatus,
)
from integrations.shopify import SOURCE, required_time, shipment_status
from integrations.shopify_admin import AdminClient, AdminError

_CUSTOMERS_QUERY = """
{
  customers {
    edges {
      node {
        id
        firstName
        lastName
        locale
        createdAt
        updatedAt
        defaultEmailAddress { emailAddress marketingState marketingUpdatedAt }
        defaultPhoneNumber { phoneNumber marketingState marketingUpdatedAt }
        metafield(namespace: $namespace, key: $key) { namespace key value }
      }
    }
  }
}
"""


def customers_query(namespace: str, key: str) -> str:
    """The customers export with the shop's birth-date metafield. Bulk
    queries take no variables, so the (validated) names are written in as
    JSON strings, which are valid GraphQL string literals."""
    return _CUSTOMERS_QUERY.replace("$namespace", orjson.dumps(namespace).decode()).replace(
        "$key", orjson.dumps(key).decode()
    )


# The Order fields we read, shared by the bulk export and the reconciliation
# query (so that both go through `parse_record`).
ORDER_FIELDS = """
        id
        name
        createdAt
        updatedAt
        cancelledAt
        displayFinancialStatus
        test
        displayFulfillmentStatus
        currencyCode
        totalPriceSet { shopMoney { amount } }
        email
        phone
        customerLocale
        customer { id updatedAt }
        fulfillments {
          id
          status
          displayStatus
          createdAt
          updatedAt
          deliveredAt
          estimatedDeliveryAt
          trackingInfo { company number url }
        }
        fulfillmentOrders(first: 10) {
          edges {
            node {
              id
              status
              updatedAt
              fulfillBy
              fulfillAt
              deliveryMethod { minDeliveryDateTime maxDeliveryDateTime }
              fulfillmentHolds { reason }
            }
          }
        }
"""

_ORDERS_QUERY = f"""
{{
  orders {{
    edges {{
      node {{{ORDER_FIELDS}      }}
    }}
  }}
}}
"""

# Orders changed since a moment, a page at a time: what the reconciliation
# job compares with what the webhooks told us (search syntax: updated_at:>=).
RECENT_ORDERS_QUERY = f"""
query careloopRecentOrders($first: Int!, $after: String, $query: String!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{{ORDER_FIELDS}    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

# One bulk query per connection root (Shopify takes a single top-level field),
# run in this order: customers, then the orders that refer to them. Either
# order gives the same result, since an order's embedded customer is a
# partial snapshot that never versions the customer (CustomerSnapshot.complete).
# A single `customers { orders }` query would not do: guest checkouts have no
# customer and would be missed.
BULK_QUERIES: tuple[str, ...] = (customers_query("facts", "birth_date"), _ORDERS_QUERY)


def step_query(step: int, namespace: str, key: str) -> str:
    """BULK_QUERIES[step], with the shop's birth-date metafield for customers."""
    return customers_query(namespace, key) if step == 0 else BULK_QUERIES[step]


# What each of BULK_QUERIES exports, by the same index.
STEP_NAMES: tuple[str, ...] = ("customers", "orders")

RUN_QUERY = """
mutation careloopBulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""

STATUS_QUERY = """
query careloopBulkOperation($id: ID!) {
  node(id: $id) {
    ... on BulkOperation { id status errorCode objectCount url partialDataUrl }
  }
}
"""

# Statuses after which nothing changes any more (CANCELING still moves on).
FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})

# Read the file in pieces this big; a line may span several.
_CHUNK_BYTES = 64 * 1024
# A Customer or Order line is a few KB; anything this long is not one of ours
# and would otherwise grow the buffer without bound.
MAX_LINE_BYTES = 16 * 1024 * 1024
# What a BulkLineError keeps of its line.
MAX_KEPT_BYTES = 64 * 1024


@dataclass(frozen=True)
class BulkStatus:
    id: str
    status: str  # the BulkOperationStatus value, as Shopify spells it
    error_code: str | None
    object_count: int
    url: str | None
    partial_data_url: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class BulkLineError(PayloadError):
    """A line of the result file we cannot interpret. `line_number` counts
    from 0, as `records` and its `start_line` do; `line` is the line as it
    was (its first MAX_KEPT_BYTES), for whoever looks into it."""

    def __init__(self, line_number: int, problem: str, line: bytes = b""):
        super().__init__(f"bulk result line {line_number} (counting from 0): {problem}")
        self.line_number = line_number
        self.problem = problem
        self.line = line[:MAX_KEPT_BYTES]


def start(client: AdminClient, query: str) -> str:
    """Start a bulk query; returns the operation's gid. Shopify's refusals
    (another operation running, an invalid query) come back as userErrors,
    which the client raises as `AdminUserErrors`."""
    payload = client.execute(RUN_QUERY, {"query": query})["bulkOperationRunQuery"]
    operation = (payload or {}).get("bulkOperation") or {}
    if not operation.get("id"):
        raise AdminError(f"bulkOperationRunQuery started nothing: {payload!r}"[:500])
    return str(operation["id"])


def status(client: AdminClient, operation_id: str) -> BulkStatus:
    """Where the bulk operation `operation_id` (a gid) stands now."""
    node = client.execute(STATUS_QUERY, {"id": operation_id}).get("node")
    if not node or not node.get("status"):
        raise AdminError(f"no bulk operation {operation_id} on {client.shop_domain}")
    return BulkStatus(
        id=str(node["id"]),
        status=str(node["status"]),
        error_code=node.get("errorCode"),
        object_count=int(node.get("objectCount") or 0),
        url=node.get("url"),
        partial_data_url=node.get("partialDataUrl"),
    )


def records(
    url: str,
    *,
    start_line: int = 0,
    session: requests.Session | None = None,
    timeout_seconds: float = 30,
) -> Iterator[tuple[int, list[Event] | BulkLineError]]:
    """Stream the result file at `url`: (line number, its events) per line,
    numbered from 0 and skipping the first `start_line` lines, so that a
    caller who has applied lines 0..n-1 resumes with `start_line=n`.

    The file is read in pieces and never held whole. Lines are split on
    "\\n" ourselves rather than with `Response.iter_lines`, which inserts
    phantom empty lines where a piece ends on a line break
    (psf/requests#4121, #5540, #6570): that would shift the numbering a
    resume depends on. A line we cannot interpret comes as its
    `BulkLineError` in place of its events, and the stream goes on past it
    (a file with many bad lines is still read once); an HTTP error answer
    (say, for a URL past its seven days) raises `requests.HTTPError`.
    """
    own = session is None
    http = session or requests.Session()
    try:
        with http.get(url, stream=True, timeout=timeout_seconds) as response:
            response.raise_for_status()
            for number, line in enumerate(_lines(response)):
                if number < start_line:
                    continue
                try:
                    yield number, _parse_line(number, line)
                except BulkLineError as exc:
                    yield number, exc
    finally:
        if own:
            http.close()


def parse_record(obj: Mapping) -> list[Event]:
    """The events one JSONL object carries: an Order (with its fulfillments
    and a partial customer) or a Customer."""
    if not isinstance(obj, Mapping):
        raise PayloadError(f"expected a JSON object, got {type(obj).__name__}")
    kind, number = _gid(obj.get("id"))
    if "__parentId" in obj and kind != "FulfillmentOrder":
        raise PayloadError(f"a nested {kind} line; our bulk queries nest only fulfillment orders")
    try:
        if kind == "FulfillmentOrder":
            parent_kind, parent = _gid(obj.get("__parentId"))
            if parent_kind != "Order":
                raise PayloadError(f"a fulfillment order under a {parent_kind}")
            return [fulfillment_order(obj, parent)]
        if kind == "Order":
            nested = ((obj.get("fulfillmentOrders") or {}).get("edges")) or ()
            return [
                _order(obj, number),
                *(fulfillment_order(edge["node"], number) for edge in nested),
            ]
        if kind == "Customer":
            return [_customer(obj, number)]
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        if isinstance(exc, PayloadError):
            raise PayloadError(f"{kind} {number}: {exc}") from None
        raise PayloadError(f"{kind} {number}: {type(exc).__name__}: {exc}") from None
    raise PayloadError(f"unexpected {kind} record; our bulk queries export Customer and Order")


def references(line: bytes) -> tuple[int | None, int | None]:
    """(customer id, order id) that a line names, as far as it can be read,
    even when the rest of it is bad: what a `customers/redact` finds a kept
    copy of the line by. (None, None) for a line that is not JSON."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, Mapping):
        return None, None
    customer = obj.get("customer")
    found: dict[str, int | None] = {"Customer": None, "Order": None}
    for gid in (obj.get("id"), customer.get("id") if isinstance(customer, Mapping) else None):
        match = _GID.fullmatch(gid) if isinstance(gid, str) else None
        # Shopify ids are 64-bit; what is longer is no id (and no bigint).
        if match and match[1] in found and len(match[2]) <= 18 and found[match[1]] is None:
            found[match[1]] = int(match[2])
    return found["Customer"], found["Order"]


# --- the file -----------------------------------------------------------------------


def _lines(response: requests.Response) -> Iterator[bytes | None]:
    """The file's lines, without their "\\n"; None for a line longer than
    MAX_LINE_BYTES, whose bytes are dropped up to its end."""
    pending = b""
    too_long = False  # in the middle of dropping such a line
    for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
        if not chunk:
            continue
        *complete, pending = (pending + chunk).split(b"\n")
        if complete and too_long:
            complete[0], too_long = None, False
        for line in complete:
            yield None if line is not None and len(line) > MAX_LINE_BYTES else line
        if len(pending) > MAX_LINE_BYTES or (too_long and pending):
            too_long, pending = True, b""
    if too_long:
        yield None
    elif pending:
        yield pending


def _parse_line(number: int, line: bytes | None) -> list[Event]:
    if line is None:
        raise BulkLineError(number, f"longer than {MAX_LINE_BYTES} bytes")
    if not line.strip():
        return []
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BulkLineError(number, f"not JSON ({exc})", line) from None
    try:
        return parse_record(obj)
    except PayloadError as exc:
        raise BulkLineError(number, str(exc), line) from None


# --- records --------------------------------------------------------------------------

# OrderDisplayFinancialStatus -> the REST `financial_status` word our state
# machine knows. Each is the REST word already, lower-cased; unknown future
# values are lower-cased the same way rather than dropped.
_FINANCIAL_STATUS = {
    "AUTHORIZED": "authorized",
    "EXPIRED": "expired",
    "PAID": "paid",
    "PARTIALLY_PAID": "partially_paid",
    "PARTIALLY_REFUNDED": "partially_refunded",
    "PENDING": "pending",
    "REFUNDED": "refunded",
    "VOIDED": "voided",
}
# OrderDisplayFulfillmentStatus -> REST `fulfillment_status`, which is only
# fulfilled, partial, restocked or null. UNFULFILLED, OPEN, IN_PROGRESS,
# ON_HOLD, PENDING_FULFILLMENT, SCHEDULED and REQUEST_DECLINED are all "not
# shipped yet": null.
_FULFILLMENT_STATUS = {
    "FULFILLED": "fulfilled",
    "PARTIALLY_FULFILLED": "partial",
    "RESTOCKED": "restocked",
}
# FulfillmentDisplayStatus values without a REST `shipment_status` word (the
# others, lower-cased, are exactly the REST words `shipment_status` maps:
# label_printed, label_purchased, confirmed, in_transit, out_for_delivery,
# attempted_delivery, ready_for_pickup, picked_up, delivered, failure; and
# FULFILLED and MARKED_AS_FULFILLED mean shipped, its default).
_DISPLAY_STATUS = {
    "CANCELED": ShipmentStatus.CANCELLED,
    "CARRIER_PICKED_UP": ShipmentStatus.IN_TRANSIT,
    # Late, not lost: lateness is judged against estimatedDeliveryAt.
    "DELAYED": ShipmentStatus.IN_TRANSIT,
    # The label was voided, so nothing left the warehouse under it.
    "LABEL_VOIDED": ShipmentStatus.CANCELLED,
    "NOT_DELIVERED": ShipmentStatus.EXCEPTION,
    # Sent to the fulfillment service, not yet shipped.
    "SUBMITTED": ShipmentStatus.LABEL_CREATED,
}

_GID = re.compile(r"gid://shopify/(\w+)/(\d+)(?:\?.*)?")


def _order(obj: Mapping, order_id: int) -> OrderSnapshot:
    financial = obj.get("displayFinancialStatus")
    amount = ((obj.get("totalPriceSet") or {}).get("shopMoney") or {}).get("amount")
    return OrderSnapshot(
        shopify_id=order_id,
        updated_at=required_time(obj, "updatedAt"),
        name=obj.get("name"),
        created_at=parse_timestamp(obj.get("createdAt")),
        financial_status=_FINANCIAL_STATUS.get(financial, financial.lower()) if financial else None,
        fulfillment_status=_FULFILLMENT_STATUS.get(obj.get("displayFulfillmentStatus") or ""),
        cancelled_at=parse_timestamp(obj.get("cancelledAt")),
        currency=obj.get("currencyCode"),
        total_price=Decimal(str(amount)) if amount not in (None, "") else None,
        email=obj.get("email") or None,
        phone=obj.get("phone") or None,
        customer=_order_customer(obj),
        shipments=tuple(_fulfillment(f, order_id) for f in obj.get("fulfillments") or ()),
        test=obj.get("test") is True,  # GraphQL Order.test
    )


def fulfillment_order(obj: Mapping, order_id: int) -> FulfillmentOrderSnapshot:
    """A FulfillmentOrder node: every fact of its promise (None: none)."""
    kind, number = _gid(obj.get("id"))
    if kind != "FulfillmentOrder":
        raise PayloadError(f"order fulfillment order is a {kind}")
    status = str(obj.get("status") or "").lower() or None
    holds = obj.get("fulfillmentHolds") or ()
    reason = (holds[0] or {}).get("reason") if holds and status == "on_hold" else None
    method = obj.get("deliveryMethod") or {}
    return FulfillmentOrderSnapshot(
        fulfillment_order_id=number,
        updated_at=required_time(obj, "updatedAt"),
        status=status,
        order_shopify_id=order_id,
        hold_reason=(str(reason).lower() or None) if reason else ("other" if holds else None),
        fulfill_by=parse_timestamp(obj.get("fulfillBy")),
        fulfill_at=parse_timestamp(obj.get("fulfillAt")),
        delivery_min_at=parse_timestamp(method.get("minDeliveryDateTime")),
        delivery_max_at=parse_timestamp(method.get("maxDeliveryDateTime")),
    )


def _order_customer(obj: Mapping) -> CustomerSnapshot | None:
    """The order's customer as the REST `_order` has it: only what the order
    knows (the id, and its `customerLocale` as the customer's locale),
    stamped with the customer's own `updatedAt`."""
    customer = obj.get("customer")
    if not customer or not customer.get("id"):
        return None
    kind, customer_id = _gid(customer["id"])
    if kind != "Customer":
        raise PayloadError(f"order customer is a {kind}")
    updated_at = parse_timestamp(customer.get("updatedAt"))
    if updated_at is None:
        raise PayloadError("order customer without updatedAt")
    locale = obj.get("customerLocale")
    return CustomerSnapshot(
        shopify_id=customer_id,
        updated_at=updated_at,
        attributes={"locale": locale} if locale else {},
        complete=False,
    )


def _fulfillment(obj: Mapping, order_id: int) -> ShipmentSnapshot:
    kind, fulfillment_id = _gid(obj.get("id"))
    if kind != "Fulfillment":
        raise PayloadError(f"order fulfillment is a {kind}")
    tracking = (obj.get("trackingInfo") or [{}])[0] or {}
    return ShipmentSnapshot(
        source=SOURCE,
        # The gid's number is the REST id, so webhooks and the import name
        # the same parcel alike.
        external_id=str(fulfillment_id),
        order_shopify_id=order_id,
        status=_shipment_status(obj.get("status"), obj.get("displayStatus")),
        updated_at=required_time(obj, "updatedAt"),
        carrier=tracking.get("company") or None,
        tracking_number=tracking.get("number") or None,
        tracking_url=tracking.get("url") or None,
        shipped_at=parse_timestamp(obj.get("createdAt")),
        estimated_delivery_at=parse_timestamp(obj.get("estimatedDeliveryAt")),
        delivered_at=parse_timestamp(obj.get("deliveredAt")),
    )


def _shipment_status(status: str | None, display: str | None) -> ShipmentStatus:
    """`integrations.shopify.shipment_status` on the lower-cased enums (they
    are the REST words), with `_DISPLAY_STATUS` for the display statuses REST
    has no word for. The fulfillment's own status decides first: a cancelled
    or failed fulfillment is that, whatever its display says."""
    fulfillment = status.lower() if status else None
    by_status = shipment_status(fulfillment, None)
    if by_status is not ShipmentStatus.SHIPPED or display not in _DISPLAY_STATUS:
        return shipment_status(fulfillment, display.lower() if display else None)
    return _DISPLAY_STATUS[display]


def _customer(obj: Mapping, customer_id: int) -> CustomerSnapshot:
    """A whole customer, so every attribute is set, None when Shopify has
    none, except consent, which is set only when reported (the consent
    webhooks keep it otherwise)."""
    email = obj.get("defaultEmailAddress") or {}
    phone = obj.get("defaultPhoneNumber") or {}
    attributes: dict[str, object] = {
        "email": email.get("emailAddress") or None,
        "phone": phone.get("phoneNumber") or None,
        "first_name": obj.get("firstName") or None,
        "last_name": obj.get("lastName") or None,
        "locale": obj.get("locale") or None,
        "shopify_created_at": parse_timestamp(obj.get("createdAt")),
    }
    for channel, consent in (("email", email), ("sms", phone)):
        if consent.get("marketingState"):
            attributes[f"{channel}_consent"] = str(consent["marketingState"]).lower()
            attributes[f"{channel}_consent_updated_at"] = parse_timestamp(
                consent.get("marketingUpdatedAt")
            )
    updated_at = parse_timestamp(obj.get("updatedAt")) or parse_timestamp(obj.get("createdAt"))
    if updated_at is None:
        raise PayloadError("customer without updatedAt or createdAt")
    return CustomerSnapshot(
        shopify_id=customer_id,
        updated_at=updated_at,
        attributes=attributes,
        metafields=_metafields(obj.get("metafield")),
    )


def _metafields(metafield) -> dict[str, str]:
    """The one metafield the export asks for (the shop's birth date), as
    "namespace.key" -> value; none when the customer has none. A value that
    is not a date is the domain's to ignore (`app.customers`)."""
    if not isinstance(metafield, Mapping) or not isinstance(metafield.get("value"), str):
        return {}
    return {f"{metafield.get('namespace')}.{metafield.get('key')}": metafield["value"]}


def _gid(value) -> tuple[str, int]:
    """The type and number of a gid: ("Order", 5001001) for
    "gid://shopify/Order/5001001"."""
    match = _GID.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PayloadError(f"expected a Shopify gid, got {value!r}"[:200])
    return match.group(1), int(match.group(2))
