"""Shopify's GraphQL Admin API: a small client that stays inside the rate
limit, and the shop-scoped webhook subscriptions CareLoop needs.

Facts relied on (read through stored copies of shopify.dev, late 2026):

- Endpoint and auth: `POST https://{shop}.myshopify.com/admin/api/{version}/graphql.json`
  with the token in `X-Shopify-Access-Token`
  (https://shopify.dev/docs/api/admin-graphql, "Authentication"; the cURL
  examples of every reference page use exactly this).
- Rate limit ("GraphQL Admin API rate limits",
  https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits, and
  https://shopify.dev/docs/api/usage/limits): a leaky bucket of cost points
  per app and shop. "Before execution can begin, the app's bucket must have
  enough room for the requested cost of the query; then ... the bucket is
  refunded the difference between the requested cost and the actual cost."
  Every response carries `extensions.cost` = {requestedQueryCost,
  actualQueryCost, throttleStatus: {maximumAvailable, currentlyAvailable,
  restoreRate}}; restoreRate is points per second (100 on the Standard plan
  today, observed as `maximumAvailable: 2000.0, restoreRate: 100.0`). A
  mutation costs 10.
- A throttled request is answered with `errors: [{message: "Throttled",
  extensions: {code: "THROTTLED"}}]`, `actualQueryCost: null` and the throttle
  status (community.shopify.com threads /t/throttled/254776 and /t/8456). Those
  threads disagree on whether the HTTP status is 200 or 429, so both are
  handled the same way.
- 401 means the token is invalid or revoked (body `{"errors": "[API] Invalid
  API key or access token ..."}`), 403 that it lacks a scope; both are
  `AdminAuthError` so the caller can refresh the token and try once more
  (app/shop_tokens.py does that).
- Mutations report problems in `userErrors: [{field, message}]` next to a null
  result, not in `errors` (UserError object, GraphQL Admin reference).
- Webhook subscriptions (2026-07): `webhookSubscriptions(first, after,
  topics, uri, format)` is a connection with `pageInfo {hasNextPage,
  endCursor}` and lists only this app's shop-scoped subscriptions, not those
  of shopify.app.toml. `webhookSubscriptionCreate(topic, webhookSubscription:
  {uri, format})` and `webhookSubscriptionUpdate(id, webhookSubscription)`
  take `uri`; `callbackUrl` is deprecated since the changelog "Consolidate
  webhook GraphQL surfaces" (https://shopify.dev/changelog/consolidate-webhook-graphql-surfaces).
  A second subscription for the same topic and address is refused with the
  userError "Address for this topic has already been taken" (code TAKEN).
  `WebhookSubscriptionInput.metafieldNamespaces` lists the metafield
  namespaces whose metafields the payloads include (customer payloads carry
  none otherwise); the subscription reports it back as `metafieldNamespaces`.
- Fulfillment orders: FULFILLMENT_ORDERS_* topics need one of the
  *_fulfillment_orders read scopes; FULFILLMENT_EVENTS_CREATE needs
  read_fulfillments (WebhookSubscriptionTopic reference).
- Discounts: `discountCodeBasicCreate(basicCodeDiscount:
  DiscountCodeBasicInput!)` returns `{codeDiscountNode {id}, userErrors
  {field message code}}` and needs write_discounts. The input (2026-01+):
  `title`, `code`, `startsAt`, `endsAt`, `usageLimit`,
  `appliesOncePerCustomer`, `context {customers {add: [gid]}}` (which
  replaced the deprecated `customerSelection`) and `customerGets {value
  {percentage: 0.0-1.0}, items {all: true}}` (GraphQL Admin reference,
  DiscountCodeBasicInput). A code already in use is a userError with code
  TAKEN (DiscountErrorCode).
- Topic enum names and the scope each needs come from the
  `WebhookSubscriptionTopic` enum reference: orders/* need read_orders,
  fulfillments/* read_fulfillments, customers/* and both consent topics
  read_customers; app/uninstalled and bulk_operations/finish need none. The
  three compliance topics are not in the enum: they can only be declared in
  shopify.app.toml or the Partner Dashboard.

- Shopify Flow: `flowTriggerReceive(handle: String, payload: JSON)` returns
  `userErrors {field message}` and starts the workflows that begin with the
  app's trigger extension of that handle; the payload carries the reference
  fields by their id key (`order_id`) and custom fields by their key
  (mutation reference, and "Flow trigger reference",
  https://shopify.dev/docs/apps/build/flow/triggers/reference).

Nothing here writes the access token into an exception, a log line or a repr.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import requests

from app import retry

log = logging.getLogger(__name__)

# REST topic name (what X-Shopify-Topic and shopify.app.toml use) -> the
# GraphQL enum value the Admin API takes, as the WebhookSubscriptionTopic
# reference lists them. Every topic integrations/shopify.py handles except the
# compliance ones, plus bulk_operations/finish (bulk exports report there); a
# test keeps this in step with SUPPORTED_TOPICS and with shopify.app.toml.
TOPIC_ENUMS: Mapping[str, str] = {
    "app/uninstalled": "APP_UNINSTALLED",
    "bulk_operations/finish": "BULK_OPERATIONS_FINISH",
    "customers/create": "CUSTOMERS_CREATE",
    "customers/update": "CUSTOMERS_UPDATE",
    "customers_email_marketing_consent/update": "CUSTOMERS_EMAIL_MARKETING_CONSENT_UPDATE",
    "customers_marketing_consent/update": "CUSTOMERS_MARKETING_CONSENT_UPDATE",
    "fulfillment_events/create": "FULFILLMENT_EVENTS_CREATE",
    "fulfillment_orders/fulfillment_request_accepted": (
        "FULFILLMENT_ORDERS_FULFILLMENT_REQUEST_ACCEPTED"
    ),
    "fulfillment_orders/hold_released": "FULFILLMENT_ORDERS_HOLD_RELEASED",
    "fulfillment_orders/order_routing_complete": "FULFILLMENT_ORDERS_ORDER_ROUTING_COMPLETE",
    "fulfillment_orders/placed_on_hold": "FULFILLMENT_ORDERS_PLACED_ON_HOLD",
    "fulfillment_orders/rescheduled": "FULFILLMENT_ORDERS_RESCHEDULED",
    "fulfillments/create": "FULFILLMENTS_CREATE",
    "fulfillments/update": "FULFILLMENTS_UPDATE",
    "orders/cancelled": "ORDERS_CANCELLED",
    "orders/create": "ORDERS_CREATE",
    "orders/fulfilled": "ORDERS_FULFILLED",
    "orders/paid": "ORDERS_PAID",
    "orders/partially_fulfilled": "ORDERS_PARTIALLY_FULFILLED",
    "orders/updated": "ORDERS_UPDATED",
}
REQUIRED_TOPICS: tuple[str, ...] = tuple(sorted(TOPIC_ENUMS.values()))
# Customer payloads carry metafields only of the namespaces their
# subscription names (`metafieldNamespaces`, WebhookSubscriptionInput).
METAFIELD_TOPICS: tuple[str, ...] = ("CUSTOMERS_CREATE", "CUSTOMERS_UPDATE")

# A query's requested cost is only known after Shopify has priced it once;
# we remember it per query text (our queries are constants, so this stays
# small; the cap guards against callers that build query strings).
_COST_MEMORY = 256
# When Shopify throttles without saying how long to wait (or the arithmetic
# says "now"), wait this long rather than hammering it.
_MIN_THROTTLE_WAIT = 1.0


class AdminError(Exception):
    """The Admin API refused the request. `errors` holds what it said:
    GraphQL `errors` entries or a mutation's `userErrors`, as dicts."""

    def __init__(self, message: str, errors: Iterable[Mapping] = ()):
        super().__init__(message)
        self.errors = [dict(e) for e in errors]


class AdminAuthError(AdminError):
    """401 or 403: the token is invalid, revoked or lacks a scope. Refresh
    the token (or ask the merchant to reopen the app) and try again."""


class AdminUserErrors(AdminError):
    """A mutation answered with `userErrors`; `data` is the whole `data`."""

    def __init__(self, message: str, errors: Iterable[Mapping], data: dict):
        super().__init__(message, errors)
        self.data = data


class AdminUnavailable(AdminError):
    """Still failing after the bounded retries (5xx, connection errors or
    throttling): worth trying again later, not a bug in the request."""


@dataclass(frozen=True)
class ThrottleStatus:
    maximum_available: float
    currently_available: float
    restore_rate: float


class AdminClient:
    """One shop's GraphQL Admin API, for one thread at a time.

    `sleep` and `monotonic` are injectable so that tests can watch the waits
    without waiting. `session` may be a shared `requests.Session`.
    """

    def __init__(
        self,
        shop_domain: str,
        access_token: str,
        api_version: str,
        base_url: str | None = None,
        timeout_seconds: float = 10,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_attempts: int = 3,
        max_throttle_retries: int = 5,
        backoff_seconds: float = 0.5,
    ):
        self.shop_domain = shop_domain
        self._access_token = access_token
        self.api_version = api_version
        self.base_url = (base_url or f"https://{shop_domain}").rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._session = session or requests.Session()
        self._sleep = sleep
        self._monotonic = monotonic
        self.max_attempts = max_attempts
        self.max_throttle_retries = max_throttle_retries
        self.backoff_seconds = backoff_seconds
        self.throttle_status: ThrottleStatus | None = None
        self._observed_at = 0.0
        self._costs: dict[str, float] = {}

    def __repr__(self) -> str:  # never show the token
        return f"AdminClient({self.shop_domain!r}, api_version={self.api_version!r})"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/admin/api/{self.api_version}/graphql.json"

    def execute(
        self, query: str, variables: Mapping | None = None, *, cost: float | None = None
    ) -> dict:
        """Run one query or mutation and return its `data`.

        Waits first when the bucket (as last reported, plus what restored
        since) has less room than the query will ask for: `cost` if given,
        else what Shopify priced this query at last time. Raises
        `AdminUserErrors` when a top-level field of `data` carries non-empty
        `userErrors`.

        5xx answers and connection errors are retried, so a mutation may run
        twice if Shopify applied it but the answer was lost: give mutations
        that matter a natural key (webhook subscriptions have one).
        """
        payload: dict = {"query": query}
        if variables is not None:
            payload["variables"] = dict(variables)
        failures = throttles = 0
        while True:
            requested = cost if cost is not None else self._costs.get(query)
            if requested:
                self._wait_for_room(requested)
            try:
                response = self._session.post(
                    self.endpoint,
                    json=payload,
                    headers={
                        "X-Shopify-Access-Token": self._access_token,
                        "Content-Type": "application/json",
                        "Accept": "application/json",
                    },
                    timeout=self.timeout_seconds,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                failures += 1
                self._retry_or_raise(failures, type(exc).__name__)
                continue
            status = response.status_code
            if status in (401, 403):
                raise AdminAuthError(
                    f"Shopify refused the access token for {self.shop_domain} "
                    f"(HTTP {status}): {self._redact(_error_text(response))}"
                )
            if status >= 500:
                failures += 1
                self._retry_or_raise(failures, f"HTTP {status}")
                continue
            body = _json(response)
            if body is not None:
                self._observe(query, body)
            errors = (body or {}).get("errors")
            if status == 429 or _throttled(errors):
                throttles += 1
                if throttles > self.max_throttle_retries:
                    raise AdminUnavailable(
                        f"Shopify kept throttling {self.shop_domain} "
                        f"({self.max_throttle_retries} waits)",
                        _as_list(errors),
                    )
                self._wait_after_throttle(response, body or {})
                continue
            if status != 200 or body is None:
                raise AdminError(
                    f"Shopify answered HTTP {status} for {self.shop_domain}: "
                    f"{self._redact(_error_text(response))}",
                    _as_list(errors),
                )
            if errors:
                raise AdminError(
                    f"GraphQL errors from {self.shop_domain}: {self._redact(_messages(errors))}",
                    _as_list(errors),
                )
            data = body.get("data") or {}
            user_errors = [
                error
                for value in data.values()
                if isinstance(value, dict)
                for error in value.get("userErrors") or ()
            ]
            if user_errors:
                raise AdminUserErrors(
                    f"userErrors from {self.shop_domain}: {self._redact(_messages(user_errors))}",
                    user_errors,
                    data,
                )
            return data

    # --- the bucket -------------------------------------------------------------

    def available_now(self) -> float | None:
        """Points in the bucket now: the last report plus what has restored."""
        status = self.throttle_status
        if status is None:
            return None
        restored = status.restore_rate * max(0.0, self._monotonic() - self._observed_at)
        return min(status.maximum_available, status.currently_available + restored)

    def _room_delay(self, requested: float) -> float:
        """Seconds until `requested` cost points are in the bucket (0 if they
        are, or if Shopify has not told us its rate). A query dearer than the
        whole bucket never fits: it waits for a full bucket, and Shopify
        answers it MAX_COST_EXCEEDED, which is better than waiting forever."""
        status, available = self.throttle_status, self.available_now()
        if status is None or available is None or status.restore_rate <= 0:
            return 0.0
        needed = min(requested, status.maximum_available)
        return max(0.0, (needed - available) / status.restore_rate)

    def _wait_for_room(self, requested: float) -> None:
        delay = self._room_delay(requested)
        if delay > 0:
            log.info("Shopify %s: waiting %.2fs for %.0f cost points",
                     self.shop_domain, delay, requested)  # fmt: skip
            self._sleep(delay)

    def _wait_after_throttle(self, response: requests.Response, body: dict) -> None:
        delay = _retry_after(response)
        cost = ((body.get("extensions") or {}).get("cost")) or {}
        requested = cost.get("requestedQueryCost")
        if delay is None and requested:
            delay = self._room_delay(float(requested))
        delay = max(delay or 0.0, _MIN_THROTTLE_WAIT)
        log.info("Shopify %s: throttled, waiting %.2fs", self.shop_domain, delay)
        self._sleep(delay)

    def _observe(self, query: str, body: dict) -> None:
        cost = (body.get("extensions") or {}).get("cost")
        if not isinstance(cost, dict):
            return
        status = cost.get("throttleStatus")
        try:
            if isinstance(status, dict):
                self.throttle_status = ThrottleStatus(
                    float(status["maximumAvailable"]),
                    float(status["currentlyAvailable"]),
                    float(status["restoreRate"]),
                )
                self._observed_at = self._monotonic()
            if cost.get("requestedQueryCost") is not None:
                if len(self._costs) >= _COST_MEMORY:
                    self._costs.clear()
                self._costs[query] = float(cost["requestedQueryCost"])
        except (KeyError, TypeError, ValueError):
            log.warning("Shopify %s: unreadable extensions.cost, ignored", self.shop_domain)

    # --- failures -----------------------------------------------------------------

    def _retry_or_raise(self, failures: int, what: str) -> None:
        if failures >= self.max_attempts:
            raise AdminUnavailable(
                f"Shopify Admin API for {self.shop_domain} failed {failures} times ({what})"
            )
        delay = retry.backoff_seconds(failures, self.backoff_seconds)
        log.warning(
            "Shopify %s: %s, retrying in %.1fs (attempt %d of %d)",
            self.shop_domain, what, delay, failures + 1, self.max_attempts,
        )  # fmt: skip
        self._sleep(delay)

    def _redact(self, text: str) -> str:
        """Belt and braces: an answer that echoes the token loses it here."""
        return text.replace(self._access_token, "[token]") if self._access_token else text


def _json(response: requests.Response) -> dict | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _throttled(errors) -> bool:
    return any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
        for e in _as_list(errors)
    )


def _as_list(errors) -> list[dict]:
    """GraphQL errors are a list of objects, but REST-style answers (401,
    404) put a string or an object under `errors`."""
    if isinstance(errors, list):
        return [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
    if errors:
        return [{"message": str(errors)}]
    return []


def _messages(errors) -> str:
    return "; ".join(str(e.get("message", e)) for e in _as_list(errors))[:500]


def _error_text(response: requests.Response) -> str:
    body = _json(response)
    if body is not None and body.get("errors"):
        return _messages(body["errors"])
    return (response.text or response.reason or "").strip()[:200]


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


# --- webhook subscriptions --------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    id: str
    topic: str
    uri: str
    format: str
    metafield_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnsureReport:
    """Topic enum names, by what `ensure_webhook_subscriptions` did to them.
    Subscriptions for other topics are never touched, so nothing is removed."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


LIST_SUBSCRIPTIONS = """
query careloopWebhookSubscriptions(
  $first: Int!, $after: String, $topics: [WebhookSubscriptionTopic!]
) {
  webhookSubscriptions(first: $first, after: $after, topics: $topics) {
    nodes { id topic uri format metafieldNamespaces }
    pageInfo { hasNextPage endCursor }
  }
}
"""

CREATE_SUBSCRIPTION = """
mutation webhookSubscriptionCreate(
  $topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!
) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri format metafieldNamespaces }
    userErrors { field message }
  }
}
"""

UPDATE_SUBSCRIPTION = """
mutation webhookSubscriptionUpdate($id: ID!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri format metafieldNamespaces }
    userErrors { field message }
  }
}
"""


def list_webhook_subscriptions(
    client: AdminClient, topics: Iterable[str] | None = None, *, page_size: int = 50
) -> list[Subscription]:
    """Every shop-scoped subscription of this app (optionally for `topics`),
    following `pageInfo.endCursor` to the last page."""
    found: list[Subscription] = []
    after = None
    while True:
        variables: dict = {"first": page_size, "after": after}
        if topics is not None:
            variables["topics"] = list(topics)
        page = client.execute(LIST_SUBSCRIPTIONS, variables)["webhookSubscriptions"]
        found.extend(
            Subscription(
                n["id"], n["topic"], n.get("uri") or "", n.get("format") or "JSON",
                tuple(sorted(n.get("metafieldNamespaces") or ())),
            )
            for n in page["nodes"]
        )  # fmt: skip
        info = page["pageInfo"]
        if not info.get("hasNextPage"):
            return found
        after = info["endCursor"]


def ensure_webhook_subscriptions(
    client: AdminClient,
    callback_url: str,
    topics: Iterable[str] = REQUIRED_TOPICS,
    *,
    page_size: int = 50,
    metafield_namespaces: Iterable[str] = (),
) -> EnsureReport:
    """Make the shop deliver each of `topics` (enum names) to `callback_url`
    as JSON, changing as little as possible; safe to run again and again.

    A topic with a right subscription is left alone; one whose subscription
    points elsewhere (the app moved) or sends XML is updated in place rather
    than given a second one; a topic without any is created. If another
    process creates the same subscription between our listing and our create,
    Shopify refuses the duplicate and we find theirs instead of failing.
    Any other userError is raised as `AdminUserErrors`.
    `metafield_namespaces` go with the customer topics (METAFIELD_TOPICS);
    a subscription naming other ones is updated.
    """
    wanted = list(dict.fromkeys(topics))
    by_topic: dict[str, list[Subscription]] = {}
    for sub in list_webhook_subscriptions(client, wanted, page_size=page_size):
        by_topic.setdefault(sub.topic, []).append(sub)
    created, updated, unchanged = [], [], []
    namespaces = tuple(sorted(set(metafield_namespaces)))
    for topic in wanted:
        target: dict = {"uri": callback_url, "format": "JSON"}
        want = namespaces if topic in METAFIELD_TOPICS else ()
        if want:
            target["metafieldNamespaces"] = list(want)
        # One already at the right address goes first: updating another one
        # to that address would be refused as a duplicate.
        existing = sorted(by_topic.get(topic, []), key=lambda s: s.uri != callback_url)
        if any(_is_right(s, callback_url, want) for s in existing):
            unchanged.append(topic)
        elif existing:
            client.execute(
                UPDATE_SUBSCRIPTION, {"id": existing[0].id, "webhookSubscription": target}
            )
            updated.append(topic)
        else:
            try:
                client.execute(CREATE_SUBSCRIPTION, {"topic": topic, "webhookSubscription": target})
            except AdminUserErrors:
                again = list_webhook_subscriptions(client, [topic], page_size=page_size)
                if not any(_is_right(s, callback_url, want) for s in again):
                    raise
                unchanged.append(topic)
            else:
                created.append(topic)
    return EnsureReport(tuple(created), tuple(updated), tuple(unchanged))


def _is_right(sub: Subscription, callback_url: str, namespaces: tuple[str, ...]) -> bool:
    return (
        sub.uri == callback_url and sub.format == "JSON" and sub.metafield_namespaces == namespaces
    )


# --- discount codes ---------------------------------------------------------------

CREATE_DISCOUNT_CODE = """
mutation careloopDiscountCode($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field message code }
  }
}
"""


@dataclass(frozen=True)
class DiscountCode:
    code: str
    title: str
    customer_gid: str  # the only customer who may use it
    percentage: float  # 0.0-1.0 off the whole order
    starts_at: str  # ISO 8601
    ends_at: str


def create_discount_code(client: AdminClient, discount: DiscountCode) -> None:
    """Create a single-use code for one customer. Safe to repeat with the
    same code: Shopify refuses a code already taken (TAKEN on `code`), which
    here means an earlier attempt made it and its answer was lost. Anything
    else Shopify refuses is raised as `AdminUserErrors`; an outage as
    `AdminUnavailable`."""
    variables = {
        "basicCodeDiscount": {
            "title": discount.title,
            "code": discount.code,
            "startsAt": discount.starts_at,
            "endsAt": discount.ends_at,
            "usageLimit": 1,
            "appliesOncePerCustomer": True,
            "context": {"customers": {"add": [discount.customer_gid]}},
            "customerGets": {
                "value": {"percentage": discount.percentage},
                "items": {"all": True},
            },
        }
    }
    try:
        client.execute(CREATE_DISCOUNT_CODE, variables)
    except AdminUserErrors as exc:
        if not exc.errors or any(
            e.get("code") != "TAKEN" or "code" not in (e.get("field") or ()) for e in exc.errors
        ):
            raise


FLOW_TRIGGER_RECEIVE = """
mutation flowTriggerReceive($handle: String, $payload: JSON) {
  flowTriggerReceive(handle: $handle, payload: $payload) {
    userErrors { field message }
  }
}
"""


def flow_trigger_receive(client: AdminClient, handle: str, payload: Mapping) -> None:
    """Start the shop's Flow workflows that begin with the trigger `handle`.
    Raises `AdminUserErrors` if Shopify refuses it, `AdminError` otherwise."""
    client.execute(FLOW_TRIGGER_RECEIVE, {"handle": handle, "payload": dict(payload)})
