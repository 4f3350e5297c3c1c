"""A year of generated order history for the demo shop, so that a newcomer
opening /app/retention sees a filled cohort heatmap rather than one cohort.

Seeded (the same history every time), applied through `app.orders.apply`
like any import, and followed by the first retention snapshot. Ids sit in
ranges of their own, apart from the scripted store day of `app.demo`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.events import CustomerSnapshot, OrderSnapshot
from app.orders import Cause, apply
from app.retention_snapshots import take_snapshot

CUSTOMERS = 240
FIRST_CUSTOMER_ID = 7_100_000
FIRST_ORDER_ID = 8_100_000


def seed_history(engine: Engine, shop_id: int, now: datetime, seed: int = 17) -> int:
    """Apply a year of orders ending yesterday; returns how many."""
    chance = random.Random(seed)
    cause = Cause(label="demo:history", inbox_id=None, now=now)
    order_id = FIRST_ORDER_ID
    with Session(engine) as session:
        for n in range(CUSTOMERS):
            at = now - timedelta(days=365) + timedelta(days=chance.uniform(0, 364))
            loyal = chance.random()  # how likely this customer is to come back
            while at < now - timedelta(days=1):
                customer = CustomerSnapshot(FIRST_CUSTOMER_ID + n, at, {}, complete=False)
                event = OrderSnapshot(
                    shopify_id=order_id, updated_at=at, name=f"#D{order_id}", created_at=at,
                    financial_status="paid", fulfillment_status="fulfilled", cancelled_at=None,
                    currency="USD", total_price=Decimal(chance.choice(("24.90", "39.00", "64.50"))),
                    email=None, phone=None, customer=customer,
                )  # fmt: skip
                apply(session, shop_id, event, cause)  # history: no alerts for old orders
                order_id += 1
                if chance.random() > loyal * 0.8:
                    break
                at += timedelta(days=chance.expovariate(1 / 45))
        session.commit()
    take_snapshot(engine, shop_id, now)
    return order_id - FIRST_ORDER_ID
