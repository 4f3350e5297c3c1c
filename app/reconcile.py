"""Reconciliation: Shopify drops a webhook after 8 failed deliveries in 4
hours, and tells apps to compare recent data with the API and repair what a
missed webhook left stale. Every few minutes we read the orders Shopify says
changed recently and apply them like webhooks: the newer `updated_at` wins,
so this repairs what is stale and changes nothing that is current."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from app import rules
from app.install import subscribe_webhooks
from app.models import Shop
from app.orders import Cause, apply
from app.runtime import Runtime
from app.shop_tokens import with_admin
from integrations import shopify_bulk
from integrations.shopify_admin import AdminClient

log = logging.getLogger(__name__)

# Shopify's retries span 4 hours: anything older is covered by an earlier run.
WINDOW = timedelta(hours=6)
# Orders a page. Each order nests up to 10 fulfillment orders (a
# connection), which multiplies the query's requested cost per order;
# Shopify refuses a single query dearer than 1000 points (MAX_COST_EXCEEDED),
# so pages stay well below that.
PAGE = 50


def reconcile_shop(rt: Runtime, shop_id: int, since: datetime) -> int:
    """Apply the shop's orders updated since `since`; returns how many. One
    client reads every page, so it keeps Shopify's throttle state and its
    connection from page to page; each page is committed with what it applied."""
    query = f"updated_at:>='{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
    with Session(rt.engine) as session:

        def apply_pages(client: AdminClient) -> int:
            count, after = 0, None
            while True:
                variables = {"first": PAGE, "after": after, "query": query}
                page = client.execute(shopify_bulk.RECENT_ORDERS_QUERY, variables)["orders"]
                cause = Cause(label="shopify:reconcile", inbox_id=None, now=rt.clock.now())
                for node in page["nodes"]:
                    for event in shopify_bulk.parse_record(node):
                        rules.react(session, apply(session, shop_id, event, cause), cause.now)
                session.commit()
                count += len(page["nodes"])
                if not page["pageInfo"]["hasNextPage"]:
                    return count
                after = page["pageInfo"]["endCursor"]

        # A 401 part-way starts again from the first page: applying is newer-wins.
        return with_admin(session, rt, session.get(Shop, shop_id), apply_pages)


def reconcile_one(rt: Runtime, shop_id: int) -> None:
    """The per-shop job: the shop's webhook subscriptions (an install may
    have left some missing), then its recent orders. Raises on failure, so
    the job's row records it and retries."""
    since = rt.clock.now() - WINDOW
    with Session(rt.engine) as session:
        subscribe_webhooks(session, rt, session.get(Shop, shop_id))
        session.commit()  # a token refreshed on the way
    count = reconcile_shop(rt, shop_id, since)
    log.info("reconciled %d recent orders of shop %s", count, shop_id)
