"""The retention job against DuckDB on the same data, in the same run.

    .venv/bin/python bench/retention.py [--scale 0.3] [--backends postgresql,sqlite]

`--scale` is millions of orders (customers = orders / 3) over three years,
generated in SQL. For each backend it builds a scratch database (migrated),
generates the shop's customers and orders, derives `customer_activity` from
them in SQL (what the incremental upkeep would have written), then measures:

- the retention job (`take_snapshot`), in a subprocess: wall time, peak
  memory (VmHWM) and the time of each step it reports;
- the matrix derived from all orders in one query (the issue's baseline);
- DuckDB computing the same matrix from the same orders (copied in; the copy
  is not timed; the best of three warm runs), whose cells must equal the
  job's.

Prints ratios against DuckDB. The machine is shared: run the small scale
first. Needs the `bench` extra (duckdb). PostgreSQL: CARELOOP_BENCH_PG.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from _common import PG_ADMIN_URL, create_databases, drop_databases, sa_url

ROOT = Path(__file__).resolve().parent.parent
TIMEZONE = "America/New_York"
START = datetime(2023, 12, 1, tzinfo=UTC)
AS_OF = date(2026, 11, 30)
COUNTED = "cancelled_at IS NULL AND COALESCE(financial_status, '') <> 'refunded' AND NOT test"


def _project() -> None:
    sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).parent]
    sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------ data, in SQL

PG_GENERATE = [
    "INSERT INTO customers (shop_id, shopify_id)"
    " SELECT :shop, g FROM generate_series(1, :customers) g",
    f"""INSERT INTO orders (shop_id, shopify_id, customer_id, currency, total_price,
          financial_status, cancelled_at, shopify_created_at, state, state_changed_at,
          created_at, test)
        SELECT :shop, g, (SELECT min(id) FROM customers) + (hashint4(g) & 2147483647) % :customers,
               'USD', round((5 + random() * 120)::numeric, 2),
               CASE WHEN random() < 0.03 THEN 'refunded' ELSE 'paid' END,
               CASE WHEN random() < 0.02 THEN now() END,
               TIMESTAMPTZ '{START.isoformat()}' + random() * INTERVAL '1095 days',
               'paid', now(), now(), random() < 0.01
        FROM generate_series(1, :orders) g""",
    f"""INSERT INTO customer_activity (shop_id, customer_id, day, first_day, previous_day,
          orders_before, days_before, orders, revenue)
        SELECT shop_id, customer_id, day, MIN(day) OVER (PARTITION BY customer_id),
               LAG(day) OVER earlier, SUM(n) OVER earlier - n,
               ROW_NUMBER() OVER earlier - 1, n, revenue
        FROM (SELECT shop_id, customer_id,
                     CAST(shopify_created_at AT TIME ZONE '{TIMEZONE}' AS date) AS day,
                     COUNT(*) AS n, SUM(total_price) AS revenue
              FROM orders WHERE shop_id = :shop AND {COUNTED}
              GROUP BY 1, 2, 3) d
        WINDOW earlier AS (PARTITION BY customer_id ORDER BY day)""",
    "ANALYZE",
]

# SQLite cannot convert time zones in SQL: its shop is on UTC.
SQLITE_GENERATE = [
    """WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :customers)
       INSERT INTO customers (shop_id, shopify_id) SELECT :shop, n FROM g""",
    f"""WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :orders)
        INSERT INTO orders (shop_id, shopify_id, customer_id, currency, total_price,
          financial_status, cancelled_at, shopify_created_at, state, state_changed_at,
          created_at, test)
        SELECT :shop, n, (SELECT min(id) FROM customers) + abs(random()) % :customers, 'USD',
               round(5 + abs(random() % 12000) / 100.0, 2),
               CASE WHEN abs(random()) % 100 < 3 THEN 'refunded' ELSE 'paid' END,
               CASE WHEN abs(random()) % 100 < 2 THEN '2026-11-30 00:00:00.000000' END,
               datetime('{START.strftime("%Y-%m-%d %H:%M:%S")}',
                        '+' || (abs(random()) % (1095 * 86400)) || ' seconds'),
               'paid', '2026-11-30 00:00:00.000000', '2026-11-30 00:00:00.000000',
               abs(random()) % 100 < 1
        FROM g""",
    f"""INSERT INTO customer_activity (shop_id, customer_id, day, first_day, previous_day,
          orders_before, days_before, orders, revenue)
        SELECT shop_id, customer_id, day, MIN(day) OVER (PARTITION BY customer_id),
               LAG(day) OVER earlier, SUM(n) OVER earlier - n,
               ROW_NUMBER() OVER earlier - 1, n, revenue
        FROM (SELECT shop_id, customer_id, date(shopify_created_at) AS day,
                     COUNT(*) AS n, SUM(total_price) AS revenue
              FROM orders WHERE shop_id = :shop AND {COUNTED}
              GROUP BY 1, 2, 3) d
        WINDOW earlier AS (PARTITION BY customer_id ORDER BY day)""",
    "ANALYZE",
]

PG_FROM_ORDERS = f"""
  WITH counted AS (
    SELECT customer_id, CAST(shopify_created_at AT TIME ZONE '{TIMEZONE}' AS date) AS day
    FROM orders WHERE shop_id = :shop AND {COUNTED}),
  firsts AS (SELECT customer_id, MIN(day) AS first_day FROM counted GROUP BY 1)
  SELECT CAST(date_trunc('month', first_day) AS date), CAST(date_trunc('month', day) AS date),
         COUNT(DISTINCT c.customer_id)
  FROM counted c JOIN firsts f USING (customer_id)
  WHERE day <= :as_of GROUP BY 1, 2"""

DUCKDB_MATRIX = """
  WITH counted AS (
    SELECT customer_id, CAST(timezone('{tz}', shopify_created_at) AS DATE) AS day
    FROM orders WHERE NOT cancelled AND COALESCE(financial_status, '') <> 'refunded' AND NOT test),
  firsts AS (SELECT customer_id, MIN(day) AS first_day FROM counted GROUP BY 1)
  SELECT CAST(date_trunc('month', first_day) AS DATE), CAST(date_trunc('month', day) AS DATE),
         COUNT(DISTINCT c.customer_id)
  FROM counted c JOIN firsts f USING (customer_id)
  WHERE day <= DATE '{as_of}' GROUP BY 1, 2"""


def build(url: str, orders: int, generate: list[str]) -> tuple[int, float]:
    """A migrated database with one shop and its generated history."""
    _project()
    from sqlalchemy import text
    from sqlmodel import Session

    from app import migrate
    from app.db import make_engine
    from app.shops import add_shop

    migrate.upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    with Session(engine) as session:
        shop, _ = add_shop(session, "bench.myshopify.com", datetime.now(UTC))
        shop.timezone = TIMEZONE if engine.dialect.name == "postgresql" else "UTC"
        session.add(shop)
        session.flush()
        shop_id = shop.id
        session.commit()
    params = {"shop": shop_id, "customers": max(orders // 3, 1), "orders": orders}
    with engine.begin() as conn:
        for statement in generate:
            conn.execute(text(statement), params)
    engine.dispose()
    return shop_id, time.perf_counter() - started


def print_job(measured: dict) -> None:
    """The job's wall time, peak memory and each step `take_snapshot` reported."""
    print(f"  job (subprocess):           {measured['seconds']:.2f} s, "
          f"peak {measured['peak_mb']:.0f} MB")  # fmt: skip
    print("    steps: " + ", ".join(f"{k} {v:.2f}" for k, v in measured["steps"].items()))


def run_job_in_subprocess(url: str, shop_id: int) -> dict:
    child = subprocess.run(
        [sys.executable, __file__, "job", url, str(shop_id)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(child.stdout.strip().splitlines()[-1])


def peak_rss_kb() -> int:
    """This process's peak resident memory since it started the program
    (Linux's VmHWM). Not ru_maxrss: Linux carries that over from the parent
    through fork and exec, so the child would report the generator's memory."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def job(url: str, shop_id: int) -> None:
    """The child: one retention job, its time and its peak memory."""
    _project()
    from app.db import make_engine
    from app.retention_snapshots import SnapshotRequest, take_snapshot

    engine = make_engine(url)
    steps: dict[str, float] = {}
    started = last = time.perf_counter()

    def step(label: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[label], last = now - last, now

    snapshot = take_snapshot(engine, shop_id, datetime.now(UTC), SnapshotRequest(AS_OF), step)
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_kb() / 1024
    result = {"seconds": seconds, "peak_mb": peak_mb, "steps": steps, "snapshot": snapshot.id}
    print(json.dumps(result))


def job_cells(url: str, shop_id: int) -> dict:
    _project()
    from sqlmodel import Session

    from app.db import make_engine
    from app.retention_snapshots import latest_snapshot

    engine = make_engine(url)
    with Session(engine) as session:
        report = json.loads(latest_snapshot(session, shop_id, as_of=AS_OF).report)
    engine.dispose()
    cells = {}
    for cohort in report["cohorts"]:
        start = date.fromisoformat(cohort["cohort"])
        for cell in cohort["cells"]:
            if cell["customers"]:
                month = start.month - 1 + cell["offset"]
                cells[(start, date(start.year + month // 12, month % 12 + 1, 1))] = cell[
                    "customers"
                ]
    return cells


def pg_from_orders(url: str, shop_id: int) -> tuple[float, dict]:
    _project()
    from sqlalchemy import text

    from app.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        started = time.perf_counter()
        rows = conn.execute(text(PG_FROM_ORDERS), {"shop": shop_id, "as_of": AS_OF}).all()
        seconds = time.perf_counter() - started
    engine.dispose()
    return seconds, {(c, p): n for c, p, n in rows}


def pg_from_activity(url: str, shop_id: int) -> float:
    """The job's matrix query alone (from customer_activity)."""
    _project()
    from zoneinfo import ZoneInfo

    from sqlmodel import Session

    from app.db import make_engine
    from app.retention import Scope, matrix_cells

    engine = make_engine(url)
    scope = Scope(shop_id, AS_OF, "month", 180, ZoneInfo(TIMEZONE))
    with Session(engine) as session:
        started = time.perf_counter()
        matrix_cells(session, scope)
        seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def duckdb_matrix(database: str, shop_id: int, directory: Path) -> tuple[float, float, dict]:
    import duckdb

    csv_path = directory / "orders.csv"
    started = time.perf_counter()
    with (
        psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database) as conn,
        conn.cursor().copy(
            "COPY (SELECT customer_id, shopify_created_at, cancelled_at IS NOT NULL AS cancelled,"
            f" financial_status, test FROM orders WHERE shop_id = {int(shop_id)})"
            " TO STDOUT WITH (FORMAT csv, HEADER true)"
        ) as copy,
        csv_path.open("wb") as out,
    ):
        for chunk in copy:
            out.write(chunk)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE orders AS SELECT * FROM read_csv_auto('{csv_path}')")
    loaded = time.perf_counter() - started
    query = DUCKDB_MATRIX.format(tz=TIMEZONE, as_of=AS_OF.isoformat())
    con.execute(query).fetchall()  # warm, as PostgreSQL's cache is after the job
    # The best of three: the baseline at its fastest, whatever runs beside it.
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        rows = con.execute(query).fetchall()
        timings.append(time.perf_counter() - started)
    return min(timings), loaded, {(c, p): n for c, p, n in rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.3, help="millions of orders")
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args()
    orders = int(args.scale * 1_000_000)
    print(f"scale: {orders:,} orders, {orders // 3:,} customers, three years")
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory() as directory:
        if "postgresql" in backends:
            name = f"careloop_bench_retention_{uuid.uuid4().hex[:8]}"
            create_databases(name)
            try:
                url = sa_url(name)
                shop_id, built = build(url, orders, PG_GENERATE)
                print(f"postgresql: generated in {built:.1f} s")
                measured = run_job_in_subprocess(url, shop_id)
                derive_s, derived = pg_from_orders(url, shop_id)
                activity_s = pg_from_activity(url, shop_id)
                duck_s, loaded, duck = duckdb_matrix(name, shop_id, Path(directory))
                cells = job_cells(url, shop_id)
                assert cells == duck == derived, "the job, PostgreSQL and DuckDB disagree"
                print_job(measured)
                print(f"  matrix from all orders:     {derive_s:.2f} s")
                print(f"  matrix from activity:       {activity_s:.2f} s")
                print(f"  DuckDB, same matrix:        {duck_s:.2f} s "
                      f"(best of 3, copy in {loaded:.1f} s)")  # fmt: skip
                print(f"  ratio job / DuckDB:         {measured['seconds'] / duck_s:.1f}x")
                print(f"  ratio orders query / DuckDB:{derive_s / duck_s:.1f}x")
                print(f"  ratio activity query/DuckDB:{activity_s / duck_s:.1f}x")
                print(f"  per million orders:         job {measured['seconds'] / args.scale:.2f} s,"
                      f" DuckDB {duck_s / args.scale:.2f} s")  # fmt: skip
                print(f"  cells equal: {len(cells)} cells, job = PostgreSQL = DuckDB")
            finally:
                drop_databases(name)
        if "sqlite" in backends:
            url = f"sqlite:///{directory}/bench.db"
            shop_id, built = build(url, orders, SQLITE_GENERATE)
            print(f"sqlite: generated in {built:.1f} s")
            measured = run_job_in_subprocess(url, shop_id)
            print_job(measured)
            print(f"  per million orders:         job {measured['seconds'] / args.scale:.2f} s")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "job":
        job(sys.argv[2], int(sys.argv[3]))
    else:
        main()
