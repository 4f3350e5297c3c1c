"""The rules' delay sweep over many open orders on PostgreSQL, against a
naive baseline measured in the same run.

    .venv/bin/python bench/delay_sweep.py [--orders 100000] [--due 0.001,0.01,0.1]

For each fraction of due orders it times, on the same rows:

- **find**: the sweep's indexed query alone (orders whose stored
  `next_check_at` has come, on ix_orders_shop_next_check);
- **sweep**: `app.delay_checks.sweep`, the job itself: find, decide, record the
  delay episodes and queue the messages, committed; in one worker, and in
  two worker processes at once (a full first batch queues a helper job, so
  a second free worker joins; here both start together);
- **writes**: the floor under any design that keeps these rows: the same
  episodes, messages, message events and due times written again by
  set-based SQL inside the server (INSERT … SELECT, UPDATE; rolled back),
  with no decisions and nothing sent over the wire;
- **naive**: the baseline the stored due time replaces: load every open order
  of the shop (and its parcels) and decide in Python with the same pure
  function (`app.delays.assess`), which finds the same orders late.

Rows are made with SQL (`generate_series`): N paid orders of one shop, none
shipped, and one in 20 with a past delay (resolved), analyzed. The due ones
were placed 8 days ago (late: past the 2-business-day promise and its 72 h
of grace), the others an hour ago; `next_check_at` is what the rules would
have stored for each. Prints the figures and the query plans (EXPLAIN
ANALYZE); nothing is asserted. Needs the local PostgreSQL
(CARELOOP_BENCH_PG, as the other benches).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from multiprocessing import Barrier, Pool
from pathlib import Path

from _common import create_databases, drop_databases, sa_url

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from _shop import migrated_with_a_shop  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from app import delay_checks  # noqa: E402
from app.delays import CLOSED, Calendar, Parcel, assess, promise_for  # noqa: E402
from app.models import Order, Shipment, Shop  # noqa: E402

GOAL_SECONDS_AT_1_PERCENT = 1.0
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday
FIND = text(
    "SELECT id FROM orders WHERE shop_id = :shop AND next_check_at <= :now "
    "ORDER BY next_check_at LIMIT :limit"
)


def make_orders(engine, shop_id: int, count: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO orders (shop_id, shopify_id, name, email, currency, total_price,
                    financial_status, fulfillment_status, state, state_changed_at, created_at,
                    shopify_created_at, snapshot_updated_at, shipping_country, next_check_at)
                SELECT :shop, 9000000000 + n, '#' || (100000 + n), 'c' || n || '@example.com',
                    'USD', 50.00, 'paid', NULL, 'paid', :now, :now, :now, :now, 'US', NULL
                FROM generate_series(1, :count) AS n
                """
            ),
            {"shop": shop_id, "count": count, "now": NOW},
        )
        # The shop's past, as a live shop's table holds it (and its planner
        # statistics, from autovacuum): one order in 20 was late once, told
        # and delivered. Never-analyzed, the table misleads the planner; see
        # bench/README.md.
        conn.execute(
            text(
                """
                INSERT INTO delay_episodes (shop_id, order_id, cause, detected_at, promised_at,
                    told_at, told_channel, resolved_at, resolution)
                SELECT :shop, id, 'estimate_passed', :past, :past, :past, 'email', :now,
                    'delivered'
                FROM orders WHERE shop_id = :shop AND id % 20 = 7
                """
            ),
            {"shop": shop_id, "past": NOW - timedelta(days=40), "now": NOW},
        )


def set_due(engine, shop_id: int, fraction: float) -> int:
    """Make `fraction` of the orders late and due; the rest recent, due
    later. Only the rows not so already are written (the last sweep's, or
    another fraction's), so that no run follows a rewrite of the whole
    table, which a live shop's sweep never does."""
    every = max(1, round(1 / fraction))
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE notification_events, notifications, shop_jobs"))
        conn.execute(text("DELETE FROM delay_episodes WHERE resolved_at IS NULL"))
        conn.execute(
            text(
                """
                UPDATE orders SET shopify_created_at = target.placed, next_check_at = target.due
                FROM (SELECT id,
                        CASE WHEN id % :every = 0 THEN :old ELSE :recent END AS placed,
                        CASE WHEN id % :every = 0 THEN :now - interval '1 minute'
                             ELSE :now + interval '3 days' END AS due
                      FROM orders WHERE shop_id = :shop) AS target
                WHERE orders.id = target.id
                  AND (orders.shopify_created_at, orders.next_check_at)
                      IS DISTINCT FROM (target.placed, target.due)
                """
            ),
            {"every": every, "old": NOW - timedelta(days=8), "recent": NOW - timedelta(hours=1),
             "now": NOW, "shop": shop_id},
        )  # fmt: skip
        due = conn.execute(
            text("SELECT count(*) FROM orders WHERE shop_id = :shop AND id % :every = 0"),
            {"shop": shop_id, "every": every},
        ).scalar()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE orders"))
        conn.execute(text("VACUUM ANALYZE delay_episodes"))
    return due


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# Each worker process holds one engine for its life, as `careloop worker`
# does: its pooled connections, and the statements they have prepared,
# outlive a sweep.
_engine = None
_both = None


def _start_worker(url: str, both) -> None:
    global _engine, _both
    _engine, _both = create_engine(url), both


def _worker_sweep(shop_id: int) -> int:
    return delay_checks.sweep(_engine, shop_id, NOW)


def _warm_up(shop_id: int) -> int:
    _both.wait()  # one in each process: neither takes the other's
    return delay_checks.sweep(_engine, shop_id, NOW)


def sweep_in(pool: Pool, workers: int, shop_id: int) -> int:
    """`sweep` in `workers` processes at once (already started and warm)."""
    return sum(pool.map(_worker_sweep, [shop_id] * workers, chunksize=1))


def cold_sweep(url: str, shop_id: int) -> int:
    """`sweep` on a new engine: new connections, nothing prepared yet (a
    worker's first sweep after it starts)."""
    engine = create_engine(url)
    try:
        return delay_checks.sweep(engine, shop_id, NOW)
    finally:
        engine.dispose()


WRITES = [
    """INSERT INTO delay_episodes (shop_id, order_id, shipment_id, cause, detected_at,
         promised_at, expected_at, told_at, told_channel)
       SELECT shop_id, order_id, shipment_id, 'floor', detected_at, promised_at,
         expected_at, told_at, told_channel FROM delay_episodes
       WHERE resolved_at IS NULL""",
    """INSERT INTO notifications (shop_id, key, kind, category, customer_id, order_id,
         channel, recipient, locale, context, status, status_detail, attempts,
         next_attempt_at, created_at, updated_at, rule_id, quiet_hours)
       SELECT shop_id, key || '-floor', kind, category, customer_id, order_id, channel,
         recipient, locale, context, status, status_detail, attempts, next_attempt_at,
         created_at, updated_at, rule_id, quiet_hours FROM notifications""",
    """INSERT INTO notification_events (shop_id, notification_id, status, detail, at)
       SELECT shop_id, notification_id, status, detail, at FROM notification_events""",
    """UPDATE orders SET next_check_at = next_check_at + interval '1 second'
       WHERE id IN (SELECT order_id FROM delay_episodes WHERE resolved_at IS NULL)""",
]


def writes_floor(engine) -> float:
    """The sweep's rows written again in the server, then rolled back."""
    with engine.connect() as conn:
        start = time.perf_counter()
        for statement in WRITES:
            conn.execute(text(statement))
        elapsed = time.perf_counter() - start
        conn.rollback()
    return elapsed


def find_all(engine, shop_id: int) -> int:
    with engine.connect() as conn:
        return len(conn.execute(FIND, {"shop": shop_id, "now": NOW, "limit": 10**9}).all())


def naive(engine, shop_id: int) -> int:
    """Load every open order and its parcels; decide each in Python."""
    with Session(engine) as session:
        shop = session.get(Shop, shop_id)
        calendar = Calendar.of(shop)
        orders = session.exec(
            select(Order).where(Order.shop_id == shop_id, Order.state.not_in(CLOSED))
        ).all()
        parcels: dict[int, list[Shipment]] = {}
        for shipment in session.exec(select(Shipment).where(Shipment.shop_id == shop_id)).all():
            parcels.setdefault(shipment.order_id, []).append(shipment)
        late = 0
        for order in orders:
            shipments = parcels.get(order.id, [])
            found = assess(order.state, order.shipping_country,
                           [Parcel.of(s) for s in shipments],
                           promise_for(order, shipments, calendar), calendar, NOW)  # fmt: skip
            late += bool(found.findings)
        return late


def check_queued(engine, shop_id: int, found: int, due: int, checked: int) -> None:
    """Every due order checked and told once; a second sweep finds nothing."""
    with engine.connect() as conn:
        queued = conn.execute(text("SELECT count(*) FROM notifications")).scalar()
    again = delay_checks.sweep(engine, shop_id, NOW)
    assert found == due == checked == queued and again == 0, (found, due, checked, queued)


def explain(engine, shop_id: int) -> str:
    with engine.connect() as conn:
        rows = conn.execute(
            text("EXPLAIN (ANALYZE, BUFFERS) " + FIND.text),
            {"shop": shop_id, "now": NOW, "limit": delay_checks.SWEEP_BATCH},
        ).scalars()
        return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--due", default="0.001,0.01,0.1", help="fractions, comma-separated")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    fractions = [float(f) for f in args.due.split(",")]
    name = f"careloop_bench_{secrets.token_hex(4)}"
    create_databases(name)
    try:
        url = sa_url(name)
        engine, shop_id = migrated_with_a_shop(url, NOW)
        elapsed, _ = timed(lambda: make_orders(engine, shop_id, args.orders))
        print(f"{args.orders:,} open orders made in {elapsed:.1f} s")
        print(f"{'due':>6} {'orders due':>10} {'find':>8} {'cold':>6} {'sweep':>7} "
              f"{'2 workers':>9} {'writes':>7} {'per due':>8} {'naive':>8} "
              f"{'naive/sweep':>11}")  # fmt: skip
        plans = {}
        with Pool(2, initializer=_start_worker, initargs=(url, Barrier(2))) as pool:
            # Each worker's first sweep, untimed (the figures are a running
            # worker's; "cold" is a first sweep's, on a new engine).
            set_due(engine, shop_id, 0.01)
            pool.map(_warm_up, [shop_id] * 2, chunksize=1)
            for fraction in fractions:
                due = set_due(engine, shop_id, fraction)
                find_s, found = timed(lambda: find_all(engine, shop_id))
                plans[fraction] = explain(engine, shop_id)
                naive_s, late = (None, None)
                if not args.skip_naive:
                    naive_s, late = timed(lambda: naive(engine, shop_id))
                cold_s, checked = timed(lambda: cold_sweep(url, shop_id))
                check_queued(engine, shop_id, found, due, checked)
                set_due(engine, shop_id, fraction)
                sweep_s, checked = timed(lambda: sweep_in(pool, 1, shop_id))
                check_queued(engine, shop_id, found, due, checked)
                floor_s = writes_floor(engine)
                set_due(engine, shop_id, fraction)
                pair_s, pair_checked = timed(lambda: sweep_in(pool, 2, shop_id))
                check_queued(engine, shop_id, found, due, pair_checked)
                if late is not None:
                    assert late == due, (late, due)
                ratio = f"{naive_s / sweep_s:10.1f}x" if naive_s else "-"
                naive_text = f"{naive_s:7.2f}s" if naive_s else "-"
                per_due = sweep_s / max(due, 1) * 1000
                print(f"{fraction:>6.1%} {due:>10,} {find_s * 1000:>6.1f}ms {cold_s:>5.2f}s "
                      f"{sweep_s:>6.2f}s "
                      f"{pair_s:>8.2f}s {floor_s:>6.2f}s {per_due:>6.2f}ms {naive_text:>8} "
                      f"{ratio:>11}")  # fmt: skip
        goal = next((f for f in fractions if abs(f - 0.01) < 1e-9), None)
        if goal is not None:
            print(f"goal: the sweep under {GOAL_SECONDS_AT_1_PERCENT:.0f} s at 1% due "
                  f"(see the table)")  # fmt: skip
        for fraction, plan in plans.items():
            print(f"\nEXPLAIN ANALYZE of the sweep's query (first batch) at {fraction:.1%} due:")
            print(plan)
    finally:
        drop_databases(name)


if __name__ == "__main__":
    main()
