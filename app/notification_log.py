"""The shop's notifications log, as the API and the log page both read it:
newest first, filtered by kind, status, channel or order, a page at a time.

Pages are cut by id (`before`: the last id of the page before), not by
offset, so a page costs the same however far back it is and a message
queued meanwhile does not shift the rows under the reader. Any row, however
old (a dead letter from last month), is reachable by paging or filtering.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from app.models import Notification, Order, Rule
from notifications import outbox

STATUSES = (outbox.QUEUED, outbox.SENDING, outbox.SENT, outbox.DELIVERED, outbox.BOUNCED,
            outbox.FAILED, outbox.SUPPRESSED, outbox.DEAD)  # fmt: skip


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    status: str | None = None
    channel: str | None = None
    order_shopify_id: int | None = None


@dataclass(frozen=True)
class Entry:
    notification: Notification
    order_shopify_id: int | None
    order_name: str | None
    rule_name: str | None  # the rule that queued it (deleted ones included)


def page(
    session: Session, shop_id: int, filters: Filters, before: int | None, limit: int
) -> tuple[list[Entry], int | None]:
    """Up to `limit` entries older than id `before` (None: the newest), and
    the cursor of the next page (None: this is the last)."""
    query = (
        select(Notification, Order.shopify_id, Order.name, Rule.name)
        .join(Order, (Order.id == Notification.order_id) & (Order.shop_id == shop_id),
              isouter=True)
        .join(Rule, (Rule.id == Notification.rule_id) & (Rule.shop_id == shop_id), isouter=True)
        .where(Notification.shop_id == shop_id)
    )  # fmt: skip
    for name in ("kind", "status", "channel"):
        if value := getattr(filters, name):
            query = query.where(getattr(Notification, name) == value)
    if filters.order_shopify_id is not None:
        query = query.where(Order.shopify_id == filters.order_shopify_id)
    if before is not None:
        query = query.where(Notification.id < before)
    rows = session.exec(query.order_by(Notification.id.desc()).limit(limit + 1)).all()
    entries = [Entry(*row) for row in rows[:limit]]
    return entries, (entries[-1].notification.id if len(rows) > limit else None)
