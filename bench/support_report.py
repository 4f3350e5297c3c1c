"""The support report over a long history, on PostgreSQL and SQLite.

    .venv/bin/python bench/support_report.py [--years 10] [--tickets-per-day 50]

One shop with years of tickets (three in four surveyed, most answered),
twice as many orders and a delay every few days, written in one go; then
`app.support_metrics.support_report` for the last 30 days (which also
reads the 30 days before), timed warm, best of three. Its cost should
follow the tickets of the two periods, not the years behind them: the
baseline printed beside it is the same report over a history of one year.
Nothing is asserted; needs the local PostgreSQL (CARELOOP_BENCH_PG).
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from _common import create_databases, drop_databases, sa_url

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from _shop import migrated_with_a_shop  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402

from app.models import DelayEpisode, Order, Survey, Ticket  # noqa: E402
from app.support_metrics import Filters, support_report  # noqa: E402

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LAST = date(2026, 11, 30)
FIRST = LAST - timedelta(days=29)
CHANNELS = ("email", "chat", "sms", "phone", "social")


def fill(engine, shop_id: int, years: int, per_day: int) -> int:
    """Write the history; returns how many tickets."""
    rng = random.Random(years)
    start = NOW - timedelta(days=365 * years)
    orders, tickets, surveys, delays = [], [], [], []
    for n in range(per_day * 2 * 365 * years):
        placed = start + timedelta(seconds=rng.randrange(365 * years * 86400))
        orders.append({
            "shop_id": shop_id, "shopify_id": 10**9 + n, "name": f"#{n}", "currency": "USD",
            "total_price": Decimal("20.00"), "state": "delivered", "state_changed_at": placed,
            "created_at": placed, "shopify_created_at": placed, "test": False,
            "on_hold": False,
        })  # fmt: skip
    with engine.begin() as conn:
        order_ids = conn.execute(insert(Order).returning(Order.id), orders).scalars().all()
    for n in range(per_day * 365 * years):
        opened = start + timedelta(seconds=rng.randrange(365 * years * 86400))
        closed = opened + timedelta(hours=rng.randrange(1, 72))
        tickets.append({
            "shop_id": shop_id, "source": "api", "external_id": f"T{n}",
            "channel": rng.choice(CHANNELS), "status": "closed", "type": "other",
            "opened_at": opened, "first_response_at": opened + timedelta(minutes=30),
            "closed_at": closed, "source_updated_at": closed, "created_at": opened,
            "order_id": rng.choice(order_ids) if rng.random() < 0.5 else None,
        })  # fmt: skip
    with engine.begin() as conn:
        ticket_ids = conn.execute(insert(Ticket).returning(Ticket.id), tickets).scalars().all()
    for ticket_id, ticket in zip(ticket_ids, tickets, strict=True):
        if rng.random() < 0.75:
            sent = ticket["closed_at"] + timedelta(minutes=5)
            answered = sent + timedelta(hours=2) if rng.random() < 0.5 else None
            surveys.append({
                "shop_id": shop_id, "ticket_id": ticket_id, "sent_at": sent,
                "rating": rng.randrange(1, 6) if answered else None, "answered_at": answered,
                "created_at": sent,
            })  # fmt: skip
    for order_id in rng.sample(order_ids, len(order_ids) // 40):
        detected = start + timedelta(seconds=rng.randrange(365 * years * 86400))
        delays.append({
            "shop_id": shop_id, "order_id": order_id, "cause": "stalled",
            "detected_at": detected, "told_at": detected + timedelta(hours=1),
        })  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Survey), surveys)
        conn.execute(insert(DelayEpisode), delays)
    return len(tickets)


def timed_report(engine, shop_id: int) -> float:
    best = float("inf")
    for _ in range(3):
        with Session(engine) as session:
            started = time.perf_counter()
            support_report(session, shop_id, "UTC", FIRST, LAST, Filters(), NOW)
            best = min(best, time.perf_counter() - started)
    return best


def measure(url: str, years: int, per_day: int) -> tuple[int, float]:
    engine, shop_id = migrated_with_a_shop(url, NOW)
    count = fill(engine, shop_id, years, per_day)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return count, timed_report(engine, shop_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--tickets-per-day", type=int, default=50)
    args = parser.parse_args()
    print(f"{'backend':<11} {'years':>5} {'tickets':>9} {'report':>9}")
    for backend in ("postgresql", "sqlite"):
        for years in (1, args.years):
            if backend == "postgresql":
                name = f"careloop_bench_{secrets.token_hex(4)}"
                create_databases(name)
                try:
                    count, seconds = measure(sa_url(name), years, args.tickets_per_day)
                finally:
                    drop_databases(name)
            else:
                with tempfile.TemporaryDirectory() as folder:
                    url = f"sqlite:///{folder}/bench.db"
                    count, seconds = measure(url, years, args.tickets_per_day)
            print(f"{backend:<11} {years:>5} {count:>9,} {seconds * 1000:>7.0f}ms", flush=True)


if __name__ == "__main__":
    main()
