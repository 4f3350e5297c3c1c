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

Extending it (OAuth, bulk operations, ...): add HTTP endpoints in `routes()`
(e.g. `/admin/oauth/authorize`, `/admin/oauth/access_token`) and GraphQL root
fields with `self.resolvers["bulkOperationRunQuery"] = Resolver(fn, cost=10)`
in `__init__`, keeping their state on the instance next to `subscriptions`.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, request
from werkzeug.serving import make_server

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
MUTATION_COST = 10

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
        "FULFILLMENT_ORDERS_HOLD_RELEASED",
        "FULFILLMENT_ORDERS_PLACED_ON_HOLD",
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

    # --- knobs ----------------------------------------------------------------------

    def throttle_next(self, count: int) -> None:
        self._throttles += count

    def fail_next(self, count: int, status: int = 502) -> None:
        self._failures.extend([status] * count)

    def add_subscription(self, topic: str, uri: str, format: str = "JSON") -> dict:
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
            "metafieldNamespaces": [],
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
        node = self.add_subscription(topic, uri, fields.get("format") or "JSON")
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


@contextmanager
def serve(standin: ShopifyStandIn) -> Iterator[str]:
    """Serve the stand-in on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, standin.app())
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _root_field(query: str) -> str | None:
    """The first field of the operation's selection set (alias skipped)."""
    match = re.search(r"\{\s*(?:\w+\s*:\s*)?(\w+)", query)
    return match.group(1) if match else None


def _refused(path: list[str], message: str) -> dict:
    return {"webhookSubscription": None, "userErrors": [{"field": path, "message": message}]}


def _number(gid: str) -> int:
    return int(gid.rsplit("/", 1)[-1])


def _cursor(node: dict) -> str:
    return base64.b64encode(node["id"].encode()).decode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
