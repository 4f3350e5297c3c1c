"""A Shopify stand-in for tests: the parts of the Admin API CareLoop talks to,
served on loopback, answering in the shapes Shopify documents.

    standin = ShopifyStandIn(valid_tokens={"shpat_good"}, clock=time_.now)
    with serve(standin) as base_url:
        client = AdminClient(SHOP, "shpat_good", "2026-07", base_url=base_url)

`POST /admin/api/<version>/graphql.json`:

- 401 with Shopify's REST-style body `{"errors": "[API] Invalid API key or
  access token ..."}` unless `X-Shopify-Access-Token` is in `valid_tokens`.
- Runs the document's first root field through `resolvers` (by field name;
  arguments come from `variables` only, which is how our client sends them).
  An unknown field is a GraphQL error, as on Shopify.
- Prices every document (`Resolver.cost`; a mutation costs 10, a connection
  2 + `first`) against a leaky bucket (`bucket`: 2000 points, 100 restored a
  second, the Standard plan's figures) and reports `extensions.cost`
  {requestedQueryCost, actualQueryCost, throttleStatus: {maximumAvailable,
  currentlyAvailable, restoreRate}} on every GraphQL answer. A document the
  bucket has no room for is answered THROTTLED (HTTP 200, `errors[0].extensions
  .code == "THROTTLED"`, `actualQueryCost: null`). Give the stand-in and the
  client the same `ManualTime` and the bucket refills exactly as far as the
  client's injected sleeps say.
- `throttle_next(n)`: the next n GraphQL calls find the bucket empty.
  `fail_next(n, status)`: the next n requests get a bare 5xx.
- Webhook subscriptions live in `subscriptions` (id -> node) and are served
  by `webhookSubscriptions` (cursor pagination, `topics`/`uri`/`format`
  filters), `webhookSubscriptionCreate` and `webhookSubscriptionUpdate`:
  `{webhookSubscription, userErrors: [{field, message}]}`. An unknown topic is
  a variable error (top-level `errors`), as GraphQL coerces enums; a topic in
  `denied_topics` (the app lacks its scope), a non-HTTPS address and a second
  subscription for the same topic and address are userErrors. Only the
  duplicate's message ("Address for this topic has already been taken", code
  TAKEN) is Shopify's wording; the others are ours.
- Objects come back with all their fields whatever the selection asked for.
- `requests` records every request: path, API version, headers, JSON body,
  root field, status.
- Bulk operations: `bulkOperationRunQuery` and `node(id:)` for a BulkOperation,
  kept in `bulk_operations` (gid -> node with the BulkOperation fields). A new
  operation is CREATED; `progress_bulk(count)` makes it RUNNING,
  `complete_bulk(lines)` COMPLETED with `objectCount`, `fileSize` and a `url`
  on this server that streams the lines as JSONL, and `fail_bulk(code,
  partial_lines=...)` FAILED with `errorCode` and `partialDataUrl`. `lines`
  is a sequence of JSON strings or a callable returning an iterable of them,
  called afresh for every download: a file of any size is generated while it
  is sent and never held. Concurrency is the documented one for the request's
  API version: up to five CREATED/RUNNING bulk queries from 2026-01, one
  before; past it the userError "A bulk query operation for this app and shop
  is already in progress: <gid>." (code OPERATION_IN_PROGRESS, Shopify's
  wording). A query whose top level is not exactly one connection field (the
  guide: "a single top-level field", "at least one connection", no top-level
  `node`/`nodes`) is refused with code INVALID, in our words.

Extending it (OAuth, bulk operations, ...): add HTTP endpoints in `routes()`
(e.g. `/admin/oauth/authorize`, `/admin/oauth/access_token`) and GraphQL root
fields with `self.resolvers["bulkOperationRunQuery"] = Resolver(fn, cost=10)`
in `__init__`, keeping their state on the instance next to `subscriptions`.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask, request
from processes import serve_wsgi
from sqlmodel import Session

from app.install import record_install
from app.runtime import Runtime, build_runtime
from integrations.shopify_auth import TokenSet
from support import SHOP_DOMAIN

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
MUTATION_COST = 10
# The app's Flow trigger extensions, as `shopify app deploy` would register them.
EXTENSIONS = Path(__file__).resolve().parent.parent / "extensions"

# Values of the WebhookSubscriptionTopic enum (GraphQL Admin reference,
# 2026-01..2026-07), typed in from the docs rather than imported from the code
# under test, so that a misspelt topic there is refused here. Only the ones a
# customer-care app could want; add more as needed. The compliance topics are
# not in the enum: Shopify takes them only from shopify.app.toml.
WEBHOOK_TOPICS = frozenset(
    {
        "APP_SCOPES_UPDATE",
        "APP_SUBSCRIPTIONS_UPDATE",
        "APP_UNINSTALLED",
        "BULK_OPERATIONS_FINISH",
        "CUSTOMERS_CREATE",
        "CUSTOMERS_DELETE",
        "CUSTOMERS_EMAIL_MARKETING_CONSENT_UPDATE",
        "CUSTOMERS_MARKETING_CONSENT_UPDATE",
        "CUSTOMERS_MERGE",
        "CUSTOMERS_UPDATE",
        "FULFILLMENT_EVENTS_CREATE",
        "FULFILLMENT_ORDERS_FULFILLMENT_REQUEST_ACCEPTED",
        "FULFILLMENT_ORDERS_HOLD_RELEASED",
        "FULFILLMENT_ORDERS_ORDER_ROUTING_COMPLETE",
        "FULFILLMENT_ORDERS_PLACED_ON_HOLD",
        "FULFILLMENT_ORDERS_RESCHEDULED",
        "FULFILLMENTS_CREATE",
        "FULFILLMENTS_UPDATE",
        "ORDERS_CANCELLED",
        "ORDERS_CREATE",
        "ORDERS_DELETE",
        "ORDERS_EDITED",
        "ORDERS_FULFILLED",
        "ORDERS_PAID",
        "ORDERS_PARTIALLY_FULFILLED",
        "ORDERS_UPDATED",
        "REFUNDS_CREATE",
        "SHOP_UPDATE",
    }
)


class GraphQLError(Exception):
    """Raised by a resolver: answered as a top-level `errors` entry."""

    def __init__(self, message: str, extensions: dict | None = None):
        super().__init__(message)
        self.extensions = extensions or {}


@dataclass
class Resolver:
    """A root field: `fn(variables)` returns its value; `cost` is a number or
    `cost(variables)`."""

    fn: Callable[[dict], object]
    cost: float | Callable[[dict], float] = 1

    def price(self, variables: dict) -> float:
        return self.cost(variables) if callable(self.cost) else self.cost


@dataclass
class Recorded:
    path: str
    api_version: str | None
    headers: dict[str, str]
    body: dict | None
    field: str | None = None
    status: int = 0


class ManualTime:
    """A clock that moves only when someone sleeps on it: give `sleep` to the
    client and `now` to both, and `sleeps` lists every wait."""

    def __init__(self, start: float = 1000.0):
        self.current = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.current += seconds


@dataclass
class Bucket:
    """Shopify's leaky bucket of cost points for one app on one shop."""

    maximum: float = 2000.0
    restore_rate: float = 100.0
    clock: Callable[[], float] = time.monotonic
    available: float | None = None
    _at: float = 0.0

    def __post_init__(self):
        self.set(self.maximum if self.available is None else self.available)

    def set(self, points: float) -> None:
        self.available, self._at = points, self.clock()

    def level(self) -> float:
        restored = self.restore_rate * max(0.0, self.clock() - self._at)
        return min(self.maximum, self.available + restored)

    def take(self, points: float) -> bool:
        level = self.level()
        if points > level:
            self.set(level)
            return False
        self.set(level - points)
        return True

    def status(self) -> dict:
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": round(self.level()),
            "restoreRate": self.restore_rate,
        }


class ShopifyStandIn:
    def __init__(
        self,
        valid_tokens: set[str] | frozenset[str] = frozenset({"shpat_standin"}),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.valid_tokens = set(valid_tokens)
        self.bucket = Bucket(clock=clock)
        self.requests: list[Recorded] = []
        self.subscriptions: dict[str, dict] = {}
        self.denied_topics: set[str] = set()
        self._throttles = 0
        self._failures: list[int] = []
        self._next_id = 8589934600
        self._lock = threading.Lock()
        # OAuth: codes the authorize step handed out, refresh tokens issued.
        self.client_credentials: tuple[str, str] | None = None
        self.codes: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.resolvers: dict[str, Resolver] = {
            "webhookSubscriptions": Resolver(
                self._list_subscriptions, cost=lambda v: 2 + int(v.get("first") or 0)
            ),
            "webhookSubscriptionCreate": Resolver(self._create_subscription, MUTATION_COST),
            "webhookSubscriptionUpdate": Resolver(self._update_subscription, MUTATION_COST),
        }
        # Bulk operations: gid -> BulkOperation node, and the lines of each
        # finished one's files by name (see `complete_bulk`).
        self.bulk_operations: dict[str, dict] = {}
        self._bulk_files: dict[str, BulkLines] = {}
        self.resolvers["bulkOperationRunQuery"] = Resolver(self._run_bulk_query, MUTATION_COST)
        # Discount codes made with discountCodeBasicCreate, by code (the
        # input as sent); `refuse_discounts` answers the next ones with a
        # userError instead.
        self.discounts: dict[str, dict] = {}
        self.refuse_discounts = 0
        self.resolvers["discountCodeBasicCreate"] = Resolver(self._create_discount, MUTATION_COST)
        # `orders(first, after, query)`: Order nodes as tests give them (the
        # shape of integrations.shopify_bulk.ORDER_FIELDS); `query` is recorded,
        # not evaluated: tests list only the orders a search would find.
        self.orders: list[dict] = []
        # Bulk queries whose root field is a key here complete at once with
        # those lines (for tests that drive a whole import in one call).
        self.auto_complete: dict[str, BulkLines] = {}
        self.resolvers["orders"] = Resolver(
            self._list_orders, cost=lambda v: 2 + int(v.get("first") or 0)
        )
        self.resolvers["node"] = Resolver(self._node)
        # Shopify Flow: the app's trigger extensions (extensions/*/ in the
        # repository) and every payload Shopify accepted for one.
        self.flow_handles: set[str] = {
            path.parent.name for path in EXTENSIONS.glob("*/shopify.extension.toml")
        }
        self.flow_triggers: list[tuple[str, dict]] = []
        self.resolvers["flowTriggerReceive"] = Resolver(self._flow_trigger, MUTATION_COST)

    # --- knobs ----------------------------------------------------------------------

    def throttle_next(self, count: int) -> None:
        self._throttles += count

    def fail_next(self, count: int, status: int = 502) -> None:
        self._failures.extend([status] * count)

    def add_subscription(
        self, topic: str, uri: str, format: str = "JSON", metafield_namespaces: list | None = None
    ) -> dict:
        """A subscription that already exists on the shop."""
        self._next_id += 1
        stamp = _now()
        node = {
            "id": f"gid://shopify/WebhookSubscription/{self._next_id}",
            "topic": topic,
            "uri": uri,
            "callbackUrl": uri if uri.startswith("https://") else None,
            "format": format,
            "createdAt": stamp,
            "updatedAt": stamp,
            "filter": None,
            "includeFields": [],
            "metafieldNamespaces": list(metafield_namespaces or []),
        }
        self.subscriptions[node["id"]] = node
        return node

    def graphql_calls(self) -> list[str]:
        """Root fields of the GraphQL requests that reached a resolver, in order."""
        return [r.field for r in self.requests if r.field]

    # --- HTTP ---------------------------------------------------------------------------

    def app(self) -> Flask:
        app = Flask("shopify-stand-in")
        self.routes(app)
        return app

    def routes(self, app: Flask) -> None:
        @app.post("/admin/oauth/access_token")
        def access_token():
            """The code grant, token exchange and refresh: JSON in, and an
            expiring offline token (expires_in 3600, refresh token for 90 days)
            out, which then opens the GraphQL endpoint."""
            body = request.get_json(silent=True) or {}
            with self._lock:
                self.requests.append(Recorded(request.path, "", dict(request.headers), body))
                credentials = (body.get("client_id"), body.get("client_secret"))
                if self.client_credentials and credentials != self.client_credentials:
                    return {"error": "invalid_client"}, 401
                grant = body.get("grant_type")
                if grant is None and body.get("code") in self.codes:
                    self.codes.discard(body["code"])
                elif grant == "refresh_token" and body.get("refresh_token") in self.refresh_tokens:
                    self.refresh_tokens.discard(body["refresh_token"])
                elif grant != "urn:ietf:params:oauth:grant-type:token-exchange":
                    return {"error": "invalid_grant", "error_description": "unknown code"}, 400
                token, refresh = f"shpat_{uuid.uuid4().hex}", f"shprt_{uuid.uuid4().hex}"
                self.valid_tokens.add(token)
                self.refresh_tokens.add(refresh)
                return {
                    "access_token": token,
                    "scope": "read_orders,read_customers",
                    "expires_in": 3600,
                    "refresh_token": refresh,
                    "refresh_token_expires_in": 7_776_000,
                }

        @app.get("/bulk-results/<name>.jsonl")
        def bulk_result(name):
            """A bulk operation's JSONL file, streamed as it is generated. The
            real one is a signed storage URL on another host, so no token."""
            with self._lock:
                source = self._bulk_files.get(name)
                status = 404 if source is None else 200
                self.requests.append(
                    Recorded(request.path, None, dict(request.headers), None, status=status)
                )
            if source is None:
                return "NoSuchKey", 404
            return app.response_class(_jsonl_chunks(source), mimetype="application/jsonl")

        @app.post("/admin/api/<version>/graphql.json")
        def graphql(version):
            with self._lock:
                recorded = Recorded(
                    request.path, version, dict(request.headers), request.get_json(silent=True)
                )
                self.requests.append(recorded)
                body, status = self._graphql(recorded)
                recorded.status = status
                return body, status

    def _graphql(self, recorded: Recorded) -> tuple[dict | str, int]:
        if self._failures:
            return "upstream failure", self._failures.pop(0)
        if recorded.headers.get("X-Shopify-Access-Token") not in self.valid_tokens:
            return {"errors": INVALID_TOKEN}, 401
        body = recorded.body or {}
        query, variables = body.get("query") or "", body.get("variables") or {}
        name = _root_field(query)
        resolver = self.resolvers.get(name or "")
        if resolver is None:
            root = "Mutation" if query.lstrip().startswith("mutation") else "QueryRoot"
            return self._errors(
                f"Field '{name}' doesn't exist on type '{root}'", "undefinedField", 1
            )
        requested = resolver.price(variables)
        if requested > self.bucket.maximum:
            return self._errors(
                f"Query cost is {requested:.0f}, which exceeds the single query max cost "
                f"limit ({self.bucket.maximum:.0f}).",
                "MAX_COST_EXCEEDED",
                requested,
            )
        if self._throttles:
            self._throttles -= 1
            self.bucket.set(0)
        if not self.bucket.take(requested):
            return self._errors("Throttled", "THROTTLED", requested)
        recorded.field = name
        try:
            value = resolver.fn(variables)
        except GraphQLError as exc:
            return {"errors": [{"message": str(exc), "extensions": exc.extensions}],
                    "extensions": self._cost(requested, requested)}, 200  # fmt: skip
        return {"data": {name: value}, "extensions": self._cost(requested, requested)}, 200

    def _errors(self, message: str, code: str, requested: float) -> tuple[dict, int]:
        error = {"message": message, "extensions": {"code": code}}
        if code == "THROTTLED":
            error["extensions"]["documentation"] = "https://shopify.dev/api/usage/rate-limits"
        return {"errors": [error], "extensions": self._cost(requested, None)}, 200

    def _cost(self, requested: float, actual: float | None) -> dict:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": self.bucket.status(),
            }
        }

    # --- Flow ------------------------------------------------------------------------------

    def _flow_trigger(self, variables: dict) -> dict:
        handle, payload = variables.get("handle"), variables.get("payload")
        if handle not in self.flow_handles:
            return {"userErrors": [{"field": ["handle"], "message": f"Invalid handle '{handle}'."}]}
        if not isinstance(payload, dict) or "order_id" not in payload:
            return {
                "userErrors": [
                    {
                        "field": ["payload"],
                        "message": "Errors validating schema: order_id is required",
                    }
                ]
            }
        self.flow_triggers.append((handle, payload))
        return {"userErrors": []}

    # --- webhook subscriptions ----------------------------------------------------------

    def _list_subscriptions(self, variables: dict) -> dict:
        first = variables.get("first")
        if not first:
            raise GraphQLError("you must provide one of first or last", {"code": "BAD_REQUEST"})
        nodes = sorted(self.subscriptions.values(), key=lambda n: _number(n["id"]))
        if variables.get("topics"):
            nodes = [n for n in nodes if n["topic"] in variables["topics"]]
        if variables.get("uri"):
            nodes = [n for n in nodes if n["uri"] == variables["uri"]]
        if variables.get("format"):
            nodes = [n for n in nodes if n["format"] == variables["format"]]
        if variables.get("after"):
            after = _number(base64.b64decode(variables["after"]).decode())
            nodes = [n for n in nodes if _number(n["id"]) > after]
        page, more = nodes[:first], len(nodes) > first
        edges = [{"cursor": _cursor(n), "node": dict(n)} for n in page]
        return {
            "edges": edges,
            "nodes": [e["node"] for e in edges],
            "pageInfo": {
                "hasNextPage": more,
                "hasPreviousPage": bool(variables.get("after")),
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }

    def _list_orders(self, variables: dict) -> dict:
        start = int(variables.get("after") or 0)
        page = self.orders[start : start + int(variables["first"])]
        end = start + len(page)
        return {
            "nodes": page,
            "pageInfo": {"hasNextPage": end < len(self.orders), "endCursor": str(end)},
        }

    def _create_subscription(self, variables: dict) -> dict:
        topic = variables.get("topic")
        if topic not in WEBHOOK_TOPICS:
            raise GraphQLError(
                "Variable $topic of type WebhookSubscriptionTopic! was provided invalid value",
                {"value": topic, "problems": [{"path": [], "explanation":
                    f"Expected {topic!r} to be one of: {', '.join(sorted(WEBHOOK_TOPICS))}"}]},
            )  # fmt: skip
        if topic in self.denied_topics:
            return _refused(["topic"], f"{topic} needs an access scope this app was not granted")
        fields = variables.get("webhookSubscription") or {}
        uri = fields.get("uri") or fields.get("callbackUrl") or ""
        problem = self._address_problem(topic, uri)
        if problem:
            return problem
        node = self.add_subscription(
            topic, uri, fields.get("format") or "JSON", fields.get("metafieldNamespaces")
        )
        return {"webhookSubscription": dict(node), "userErrors": []}

    def _update_subscription(self, variables: dict) -> dict:
        node = self.subscriptions.get(variables.get("id") or "")
        if node is None:
            return _refused(["id"], "Webhook subscription does not exist")
        fields = variables.get("webhookSubscription") or {}
        uri = fields.get("uri") or fields.get("callbackUrl") or node["uri"]
        if uri != node["uri"]:
            problem = self._address_problem(node["topic"], uri)
            if problem:
                return problem
        node.update(uri=uri, callbackUrl=uri, format=fields.get("format") or node["format"])
        if "metafieldNamespaces" in fields:
            node["metafieldNamespaces"] = list(fields["metafieldNamespaces"] or [])
        node["updatedAt"] = _now()
        return {"webhookSubscription": dict(node), "userErrors": []}

    def _address_problem(self, topic: str, uri: str) -> dict | None:
        if not uri.startswith("https://"):
            return _refused(["webhookSubscription", "uri"], "Address must be an HTTPS URL")
        if any(n["topic"] == topic and n["uri"] == uri for n in self.subscriptions.values()):
            return _refused(
                ["webhookSubscription", "uri"], "Address for this topic has already been taken"
            )
        return None

    # --- discount codes -----------------------------------------------------------------

    def _create_discount(self, variables: dict) -> dict:
        """`discountCodeBasicCreate`: a code already taken is Shopify's
        userError (code TAKEN on ["basicCodeDiscount", "code"])."""
        fields = variables.get("basicCodeDiscount") or {}
        code = fields.get("code")
        if self.refuse_discounts:
            self.refuse_discounts -= 1
            return _discount_refused(["basicCodeDiscount", "customerGets"], "INVALID",
                                     "Customer gets value is invalid")  # fmt: skip
        if not code or not fields.get("title"):
            return _discount_refused(["basicCodeDiscount", "code"], "BLANK", "Code can't be blank")
        if code in self.discounts:
            message = "Code must be unique. Please try a different code."
            return _discount_refused(["basicCodeDiscount", "code"], "TAKEN", message)
        self._next_id += 1
        self.discounts[code] = dict(fields)
        node = {"id": f"gid://shopify/DiscountCodeNode/{self._next_id}"}
        return {"codeDiscountNode": node, "userErrors": []}

    # --- bulk operations ----------------------------------------------------------------

    def progress_bulk(self, object_count: int, operation_id: str | None = None) -> dict:
        """The operation (default: the newest) is RUNNING, `object_count` done."""
        node = self._bulk(operation_id)
        node.update(status="RUNNING", objectCount=str(object_count),
                    rootObjectCount=str(object_count))  # fmt: skip
        return node

    def complete_bulk(
        self, lines: BulkLines, operation_id: str | None = None, *, object_count: int | None = None
    ) -> dict:
        """Finish the operation with `lines` as its file. `objectCount` is
        the number of lines unless `object_count` says otherwise; `fileSize`
        is measured by generating the lines once, without keeping them."""
        node = self._bulk(operation_id)
        count, size = _measure(lines)
        name = str(_number(node["id"]))
        self._bulk_files[name] = lines
        node.update(
            status="COMPLETED",
            completedAt=_now(),
            objectCount=str(count if object_count is None else object_count),
            rootObjectCount=str(count if object_count is None else object_count),
            fileSize=str(size),
            url=f"/bulk-results/{name}.jsonl",
        )
        return node

    def fail_bulk(
        self,
        error_code: str,
        operation_id: str | None = None,
        *,
        partial_lines: BulkLines | None = None,
    ) -> dict:
        """FAILED with `error_code` (ACCESS_DENIED, INTERNAL_SERVER_ERROR,
        TIMEOUT); `partial_lines` become the `partialDataUrl` file."""
        node = self._bulk(operation_id)
        node.update(status="FAILED", errorCode=error_code, completedAt=None, url=None)
        if partial_lines is not None:
            name = f"{_number(node['id'])}-partial"
            self._bulk_files[name] = partial_lines
            node.update(objectCount=str(_measure(partial_lines)[0]),
                        partialDataUrl=f"/bulk-results/{name}.jsonl")  # fmt: skip
        return node

    def _bulk(self, operation_id: str | None) -> dict:
        if operation_id is None:
            return list(self.bulk_operations.values())[-1]
        return self.bulk_operations[operation_id]

    def _run_bulk_query(self, variables: dict) -> dict:
        query = variables.get("query") or ""
        roots = _top_level_fields(query)
        if len(roots) != 1 or roots[0] in ("node", "nodes") or not _CONNECTION.search(query):
            return _bulk_refused(
                ["query"],
                "Bulk queries take exactly one top-level connection field, "
                f"not: {', '.join(roots) or 'none'}",
                "INVALID",
            )
        version = (request.view_args or {}).get("version") or ""
        running = [
            n["id"]
            for n in self.bulk_operations.values()
            if n["type"] == "QUERY" and n["status"] in ("CREATED", "RUNNING", "CANCELING")
        ]
        if len(running) >= _bulk_query_limit(version):
            return _bulk_refused(
                None,
                "A bulk query operation for this app and shop is already in progress: "
                f"{', '.join(running)}.",
                "OPERATION_IN_PROGRESS",
            )
        self._next_id += 1
        node = {
            "id": f"gid://shopify/BulkOperation/{self._next_id}",
            "type": "QUERY",
            "status": "CREATED",
            "query": query,
            "createdAt": _now(),
            "completedAt": None,
            "errorCode": None,
            "objectCount": "0",
            "rootObjectCount": "0",
            "fileSize": None,
            "url": None,
            "partialDataUrl": None,
        }
        self.bulk_operations[node["id"]] = node
        if roots[0] in self.auto_complete:
            self.complete_bulk(self.auto_complete[roots[0]], node["id"])
        return {"bulkOperation": dict(node), "userErrors": []}

    def _node(self, variables: dict) -> dict | None:
        """`node(id:)`: only bulk operations are known here; URLs are made
        absolute for whoever asks, as this server's base URL."""
        node = self.bulk_operations.get(variables.get("id") or "")
        if node is None:
            return None
        shown = dict(node)
        for key in ("url", "partialDataUrl"):
            if shown[key]:
                shown[key] = request.host_url.rstrip("/") + shown[key]
        return shown


def serve(standin: ShopifyStandIn):
    """Serve the stand-in on a free loopback port; yields its base URL."""
    return serve_wsgi(standin.app())


@contextmanager
def serving(token: str) -> Iterator[ShopifyStandIn]:
    """A stand-in that accepts `token`, served, with its `base_url` set."""
    standin = ShopifyStandIn(valid_tokens={token})
    with serve(standin) as base_url:
        standin.base_url = base_url
        yield standin


def installed_runtime(
    settings, db, clock, standin: ShopifyStandIn, token: str, scopes: Iterable[str],
    *, lifetime: timedelta = timedelta(hours=1), refresh_token: str | None = None,
) -> Runtime:  # fmt: skip
    """A runtime with Shopify at the stand-in, and the test shop installed
    holding `token` (and, given one, an expiring token's refresh token)."""
    runtime = build_runtime(
        dataclasses.replace(settings, shopify_url_template=standin.base_url),
        engine=db, clock=clock,
    )  # fmt: skip
    refresh_expiry = None
    if refresh_token:
        standin.refresh_tokens.add(refresh_token)
        refresh_expiry = clock.now() + timedelta(days=90)
    tokens = TokenSet(token, frozenset(scopes), clock.now() + lifetime, refresh_token,
                      refresh_expiry)  # fmt: skip
    with Session(db) as session:
        record_install(session, runtime, SHOP_DOMAIN, tokens)
        session.commit()
    return runtime


def _root_field(query: str) -> str | None:
    """The first field of the operation's selection set (alias skipped)."""
    match = re.search(r"\{\s*(?:\w+\s*:\s*)?(\w+)", query)
    return match.group(1) if match else None


def _refused(path: list[str], message: str) -> dict:
    return {"webhookSubscription": None, "userErrors": [{"field": path, "message": message}]}


def _discount_refused(field: list[str], code: str, message: str) -> dict:
    return {"codeDiscountNode": None,
            "userErrors": [{"field": field, "code": code, "message": message}]}  # fmt: skip


def _number(gid: str) -> int:
    return int(gid.rsplit("/", 1)[-1])


def _cursor(node: dict) -> str:
    return base64.b64encode(node["id"].encode()).decode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- bulk operations ------------------------------------------------------------------

# A bulk operation's lines: JSON strings, or a callable returning them afresh.
BulkLines = Sequence[str] | Callable[[], Iterable[str]]
_CONNECTION = re.compile(r"\b(edges|nodes)\s*\{")
_JSONL_CHUNK = 64 * 1024


def _bulk_query_limit(api_version: str) -> int:
    """Bulk queries that may run at once: five from 2026-01, one before
    (bulk operations guide; changelog "Faster bulk operations")."""
    return 5 if api_version >= "2026-01" else 1


def _bulk_lines(lines: BulkLines) -> Iterable[str]:
    return lines() if callable(lines) else lines


def _measure(lines: BulkLines) -> tuple[int, int]:
    """(lines, bytes) of a file, generating it once without keeping it."""
    count = size = 0
    for line in _bulk_lines(lines):
        count += 1
        size += len(line.encode()) + 1
    return count, size


def _jsonl_chunks(lines: BulkLines) -> Iterator[bytes]:
    """The file in pieces of about 64 KiB, so that a line often spans two."""
    batch: list[bytes] = []
    length = 0
    for line in _bulk_lines(lines):
        data = line.encode() + b"\n"
        batch.append(data)
        length += len(data)
        if length >= _JSONL_CHUNK:
            yield b"".join(batch)
            batch, length = [], 0
    if batch:
        yield b"".join(batch)


def _top_level_fields(document: str) -> list[str]:
    """The fields of a document's outermost selection set (aliases resolved,
    arguments and strings skipped): enough to check a bulk query's shape."""
    fields: list[str] = []
    depth = parens = 0
    alias = False
    for match in re.finditer(r'"(?:\\.|[^"\\])*"|[{}():]|\w+', document):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif token == "(":
            parens += 1
        elif token == ")":
            parens -= 1
        elif depth == 1 and not parens:
            if token == ":":
                alias = True
            elif not token.startswith('"'):
                if alias:
                    fields[-1], alias = token, False
                else:
                    fields.append(token)
    return fields


def _bulk_refused(field: list[str] | None, message: str, code: str) -> dict:
    return {"bulkOperation": None, "userErrors": [{"field": field, "message": message,
                                                   "code": code}]}  # fmt: skip
