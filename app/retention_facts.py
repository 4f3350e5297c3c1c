"""The facts retention is computed from, kept up to date as orders arrive:
each customer's counted orders per day of the shop's calendar
(`models.CustomerActivity`), with their first counted day and what came
before (previous day, orders and days before) on every row.

Why a table of its own rather than deriving from `orders` each night: the
nightly job then reads one narrow table with no time-zone conversion (which
SQLite cannot do in SQL) and no filter on cancelled, refunded or test orders,
and a customer's cohort is a column rather than a window over all their
orders (bench/retention.py measures both ways).

Which orders count is said once, here (`counted`): not cancelled, not fully
refunded (Shopify's financial_status "refunded"), not a test order, with a
customer and a creation time. `refresh_customers` runs in the transaction
that applies an order (`app.orders`), webhook or history import alike, so the
facts never disagree with the orders they come from.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, delete, insert, or_
from sqlmodel import Session, select

from app.models import Customer, CustomerActivity, Order, Shop

BATCH_ROWS = 5000


def counted() -> ColumnElement[bool]:
    """The orders retention counts, for the cohort and for activity."""
    return and_(
        Order.cancelled_at.is_(None),
        or_(Order.financial_status.is_(None), Order.financial_status != "refunded"),
        Order.test.is_(False),
        Order.customer_id.is_not(None),
        Order.shopify_created_at.is_not(None),
    )


def local_day(moment: datetime, timezone: ZoneInfo) -> date:
    return moment.astimezone(timezone).date()


def activity_rows(
    shop_id: int, customer_id: int, orders: Iterable[tuple[datetime, Decimal | None]], tz: ZoneInfo
) -> list[dict]:
    """One customer's rows from their counted orders (creation time, total)."""
    days: dict[date, list] = {}
    for created_at, total in orders:
        day = days.setdefault(local_day(created_at, tz), [0, Decimal(0)])
        day[0] += 1
        day[1] += total or Decimal(0)
    if not days:
        return []
    rows, previous, before = [], None, 0
    first = min(days)
    for day in sorted(days):
        count, revenue = days[day]
        rows.append({"shop_id": shop_id, "customer_id": customer_id, "day": day,
                     "first_day": first, "previous_day": previous, "orders_before": before,
                     "days_before": len(rows), "orders": count, "revenue": revenue})  # fmt: skip
        previous, before = day, before + count
    return rows


def refresh_customers(session: Session, shop_id: int, customer_ids: Iterable[int | None]) -> None:
    """Rewrite the named customers' activity from their orders (a customer
    has few; an order that became cancelled or refunded, changed customer or
    arrived out of order is accounted for alike). The caller commits."""
    ids = sorted({c for c in customer_ids if c is not None})
    if not ids:
        return
    tz = ZoneInfo(session.get(Shop, shop_id).timezone)
    session.flush()
    # Two workers applying two orders of one customer take turns here, so
    # neither rewrites the rows from orders the other has not committed yet.
    session.exec(
        select(Customer.id)
        .where(Customer.shop_id == shop_id, Customer.id.in_(ids))
        .order_by(Customer.id)
        .with_for_update()
    ).all()
    for customer_id in ids:
        session.exec(
            delete(CustomerActivity).where(
                CustomerActivity.shop_id == shop_id, CustomerActivity.customer_id == customer_id
            )
        )
        orders = session.exec(
            select(Order.shopify_created_at, Order.total_price).where(
                Order.shop_id == shop_id, Order.customer_id == customer_id, counted()
            )
        ).all()
        rows = activity_rows(shop_id, customer_id, orders, tz)
        if rows:
            session.execute(insert(CustomerActivity), rows)


def rebuild_shop(session: Session, shop_id: int) -> int:
    """Rewrite a whole shop's activity (its time zone changed, or its orders
    predate this table), streaming its orders customer by customer rather
    than loading them all. Returns the rows written. The caller commits."""
    tz = ZoneInfo(session.get(Shop, shop_id).timezone)
    session.exec(delete(CustomerActivity).where(CustomerActivity.shop_id == shop_id))
    result = session.execute(
        select(Order.customer_id, Order.shopify_created_at, Order.total_price)
        .where(Order.shop_id == shop_id, counted())
        .order_by(Order.customer_id)
        .execution_options(yield_per=BATCH_ROWS)
    )
    written, batch, current, orders = 0, [], None, []
    for customer_id, created_at, total in result:
        if customer_id != current:
            batch += activity_rows(shop_id, current, orders, tz) if current else []
            current, orders = customer_id, []
        orders.append((created_at, total))
        if len(batch) >= BATCH_ROWS:
            session.execute(insert(CustomerActivity), batch)
            written, batch = written + len(batch), []
    batch += activity_rows(shop_id, current, orders, tz) if current else []
    if batch:
        session.execute(insert(CustomerActivity), batch)
    return written + len(batch)
