"""Retention: what a cohort, retention, churn and the rest mean, written once
(the README and the report page repeat these words), and the SQL that
computes them in the database from `customer_activity` (`app.retention_facts`).

Definitions
-----------
- A customer's **cohort** is the period (week from Monday, month, or quarter)
  of their first counted order, in the shop's time zone. Cancelled, fully
  refunded and test orders are not counted, for the cohort or for activity.
- The **retention matrix**: for each cohort and each period offset 0..N, the
  customers of the cohort who ordered in that period (offset 0 is the whole
  cohort), as a count and a share of the cohort.
- A customer has **churned** when their last order is at least the shop's
  churn window (default 180 days) before the snapshot date; otherwise they are
  active. Churn per cohort = churned / cohort size. A cohort none of whose
  customers ordered first a whole window before the snapshot date cannot
  contain anyone churned: it is marked too young, not shown as 0%.
- **Period retention rate** = ((E - N) / S) * 100: S customers active at the
  start of the period, E active at its end, N acquired during it.
- **Repeat-purchase rate**: customers with more than one counted order /
  the cohort. **Revenue** is the sum of the counted orders' totals (Shopify's
  `total_price`, in the shop's currency), per cohort and per customer.
- **Shopify's cohort analysis** (for checking our figures against the admin):
  its period 0 is the share of the cohort that placed a *repeat* order in
  its first period, where ours is 100% by construction; its later periods are
  our shares. Its gross and net sales are product prices before and after
  discounts and returns, without taxes and shipping; we hold order totals
  (with taxes and shipping, after discounts, without later partial refunds),
  so our "sales" sit between the two and net sales are not available.
- **Customers at risk**: active customers whose usual interval between order
  days (their own average, when they ordered on two days or more; otherwise
  half the churn window) has passed since their last order.
- **What moves churn**: churn and repeat rate of the customers who could have
  churned (first order a whole window before the snapshot date), split by
  their last CSAT rating (1-2, 3, 4-5, never rated); by delays (told before
  they asked = the delay's `told_at` is earlier than any ticket opened about
  that order; otherwise not told or told late; or never delayed); and by
  support (no ticket; every ticket's first response within the channel's
  target, the "average" level of /work/shared/service-levels.md: 24 h for
  email, social and other, 10 min for chat, SMS and phone; or not). Each
  rate has a 95% Wilson score interval.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import accumulate
from zoneinfo import ZoneInfo

from sqlalchemy import Date, bindparam, text
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

PERIODS = ("week", "month", "quarter")
DEFAULT_PERIOD = "month"
DEFAULT_WINDOW_DAYS = 180
MAX_WINDOW_DAYS = 3650
AT_RISK_LIMIT = 200
TREND_PERIODS = 12
# First-response targets of the "average" level (shared/service-levels.md).
RESPONSE_TARGET_SECONDS = {"chat": 600, "sms": 600, "phone": 600}
DEFAULT_RESPONSE_TARGET_SECONDS = 24 * 3600
Z95 = 1.959964


# --- pure formulas -----------------------------------------------------------


def period_start(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return day.replace(day=1)


def next_period(start: date, period: str) -> date:
    if period == "week":
        return start + timedelta(days=7)
    months = 3 if period == "quarter" else 1
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def period_offset(cohort: date, start: date, period: str) -> int:
    if period == "week":
        return (start - cohort).days // 7
    months = (start.year - cohort.year) * 12 + start.month - cohort.month
    return months // 3 if period == "quarter" else months


def period_label(start: date, period: str) -> str:
    if period == "week":
        return f"{start.isocalendar().year}-W{start.isocalendar().week:02d}"
    if period == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return start.strftime("%Y-%m")


def period_retention_rate(start: int, end: int, new: int) -> float | None:
    """((E - N) / S) * 100; None when nobody was active at the start."""
    return None if start == 0 else (end - new) / start * 100


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion, as percentages: honest on
    small numbers, where the normal approximation is not."""
    if total == 0:
        return None
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (round(max(0.0, centre - half) * 100, 1), round(min(1.0, centre + half) * 100, 1))


def percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole * 100, 1)


def end_of_day_utc(day: date, timezone: ZoneInfo) -> datetime:
    """The first instant after `day` in the shop's calendar, in UTC."""
    return datetime.combine(day + timedelta(days=1), time(), timezone).astimezone(UTC)


# --- SQL, per dialect -----------------------------------------------------------


def _trunc(dialect: str, period: str, column: str) -> str:
    # PostgreSQL keeps statistics on these expressions of customer_activity's
    # days (migration 0020): change them together.
    if dialect == "postgresql":
        return f"CAST(date_trunc('{period}', CAST({column} AS timestamp)) AS date)"
    if period == "week":  # %w: 0 is Sunday; weeks start on Monday
        weekday = f"((CAST(strftime('%w', {column}) AS INTEGER) + 6) % 7)"
        return f"date({column}, '-' || {weekday} || ' days')"
    if period == "quarter":
        return (
            f"date({column}, 'start of month', "
            f"'-' || ((CAST(strftime('%m', {column}) AS INTEGER) - 1) % 3) || ' months')"
        )
    return f"date({column}, 'start of month')"


def _days(dialect: str, earlier: str, later: str) -> str:
    if dialect == "postgresql":
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def _seconds(dialect: str, earlier: str, later: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400)"


def _plus_days(dialect: str, column: str, days: int) -> str:
    if dialect == "postgresql":
        return f"({column} + {int(days)})"
    return f"date({column}, '+{int(days)} days')"


_TYPES = {"as_of": Date(), "cutoff": Date(), "since": Date(), "end": UTCDateTime()}


def _params(statement: str):
    """The statement with its dates and instants typed, so that each driver
    gets what its column holds (SQLite: ISO text)."""
    return text(statement).bindparams(
        *(bindparam(name, type_=kind) for name, kind in _TYPES.items() if f":{name}" in statement)
    )


def _ratings_cte() -> str:
    return """
    ratings AS (
      SELECT customer_id, rating FROM (
        SELECT customer_id, rating,
               ROW_NUMBER() OVER (PARTITION BY customer_id
                                  ORDER BY answered_at DESC, id DESC) AS n
        FROM surveys
        WHERE shop_id = :shop AND rating IS NOT NULL AND customer_id IS NOT NULL
          AND answered_at < :end
      ) ranked WHERE n = 1
    )"""


def _delays_cte() -> str:
    # Told before they asked: told, and no ticket about that order opened
    # before (or at) the moment they were told.
    return """
    delays AS (
      SELECT o.customer_id,
             MAX(CASE WHEN e.told_at IS NOT NULL AND e.told_at < :end AND NOT EXISTS (
                   SELECT 1 FROM tickets t
                   WHERE t.shop_id = e.shop_id AND t.order_id = e.order_id
                     AND t.opened_at <= e.told_at)
                 THEN 0 ELSE 1 END) AS untold
      FROM delay_episodes e JOIN orders o ON o.id = e.order_id AND o.shop_id = e.shop_id
      WHERE e.shop_id = :shop AND e.detected_at < :end AND o.customer_id IS NOT NULL
      GROUP BY o.customer_id
    )"""


def _support_cte(dialect: str) -> str:
    targets = " ".join(
        f"WHEN '{channel}' THEN {seconds}" for channel, seconds in RESPONSE_TARGET_SECONDS.items()
    )
    waited = _seconds(dialect, "opened_at", "first_response_at")
    return f"""
    support AS (
      SELECT customer_id,
             MAX(CASE WHEN first_response_at IS NULL OR first_response_at >= :end
                       OR {waited} > CASE channel {targets}
                                     ELSE {DEFAULT_RESPONSE_TARGET_SECONDS} END
                 THEN 1 ELSE 0 END) AS late
      FROM tickets
      WHERE shop_id = :shop AND customer_id IS NOT NULL AND opened_at < :end
      GROUP BY customer_id
    )"""


# Per split: the CTE of the customers it knows about, their group, the
# groups in report order, and the group of every other customer (counted as
# the customers who could have churned less those known to the CTE).
SPLITS = {
    "rating": (
        "ratings",
        "CASE WHEN ratings.rating <= 2 THEN '1-2' WHEN ratings.rating = 3 THEN '3' ELSE '4-5' END",
        ("1-2", "3", "4-5", "never rated"),
    ),
    "delay": (
        "delays",
        "CASE WHEN delays.untold = 0 THEN 'delayed, told before they asked'"
        " ELSE 'delayed, not told or told late' END",
        ("delayed, told before they asked", "delayed, not told or told late", "never delayed"),
    ),
    "support": (
        "support",
        "CASE WHEN support.late = 0 THEN 'answered within target'"
        " ELSE 'answered late or not at all' END",
        ("answered within target", "answered late or not at all", "no ticket"),
    ),
}

# Rows that each stand for one customer, so that sums count customers:
# their first row; their first row in the churn window ending on the snapshot
# date (they are active then); the row of their second counted order.
FIRST_ROW = "previous_day IS NULL"
ACTIVE_ROW = "day > :cutoff AND (previous_day IS NULL OR previous_day <= :cutoff)"
REPEAT_ROW = "orders_before < 2 AND orders_before + orders >= 2"
# Customers who could have churned: first order a whole window before.
GROWN = "first_day <= :cutoff"


def _count(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


@dataclass(frozen=True)
class Scope:
    """What a computation is about: one shop, as of one day, in its calendar."""

    shop_id: int
    as_of: date
    period: str
    window_days: int
    timezone: ZoneInfo

    @property
    def cutoff(self) -> date:
        """A last order on or before this day is a whole window old: churned."""
        return self.as_of - timedelta(days=self.window_days)

    def params(self, **more) -> dict:
        return {
            "shop": self.shop_id,
            "as_of": self.as_of,
            "cutoff": self.cutoff,
            "since": self.as_of,
            "end": end_of_day_utc(self.as_of, self.timezone),
        } | more


def _date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Cell:
    """One cohort's activity in one period, with the customers counted there
    by one row of theirs (`FIRST_ROW`, `ACTIVE_ROW`, `REPEAT_ROW`), overall
    and of those who could have churned (`GROWN`)."""

    cohort: date
    period: date
    customers: int  # who ordered in the period
    orders: int
    revenue: Decimal
    first_day: date  # the earliest first order among them
    new: int  # whose first order is in the period
    active: int  # active at the snapshot date
    repeat: int  # whose second order is in the period
    grown_new: int
    grown_active: int
    grown_repeat: int


def matrix_cells(session: Session, scope: Scope) -> list[Cell]:
    """Every non-empty cell of the matrix, in one aggregate over the activity
    up to the snapshot date: a customer is in a cell by their first row of
    the period (no previous day, or one before the period), so a hash
    aggregate of a few hundred groups does it, without the sort of a
    COUNT(DISTINCT) or a pass grouped by customer."""
    dialect = session.get_bind().dialect.name
    period = _trunc(dialect, scope.period, "day")
    statement = f"""
      SELECT {_trunc(dialect, scope.period, "first_day")} AS cohort, {period} AS period,
             {_count(f"previous_day IS NULL OR previous_day < {period}")},
             SUM(orders), SUM(revenue), MIN(first_day),
             {_count(FIRST_ROW)}, {_count(ACTIVE_ROW)}, {_count(REPEAT_ROW)},
             {_count(f"{GROWN} AND {FIRST_ROW}")}, {_count(f"{GROWN} AND ({ACTIVE_ROW})")},
             {_count(f"{GROWN} AND {REPEAT_ROW}")}
      FROM customer_activity
      WHERE shop_id = :shop AND day <= :as_of
      GROUP BY 1, 2 ORDER BY 1, 2"""
    return [
        Cell(_date(cohort), _date(start), int(n), int(orders), _money(revenue), _date(first),
             *(int(count) for count in counts))
        for cohort, start, n, orders, revenue, first, *counts in session.execute(
            _params(statement), scope.params()
        )
    ]  # fmt: skip


def cohort_facts(cells: list[Cell]) -> list[dict]:
    """Per cohort, from its cells: size, churned (not active at the snapshot
    date), repeat customers, Shopify's period-0 repeaters (second order in
    the cohort's own period), orders and revenue."""
    facts: dict[date, dict] = {}
    for cell in cells:
        fact = facts.setdefault(cell.cohort, {
            "cohort": cell.cohort, "first_day": cell.first_day, "customers": 0, "churned": 0,
            "repeat": 0, "first_period_repeat": 0, "orders": 0, "revenue": Decimal("0.00"),
        })  # fmt: skip
        fact["first_day"] = min(fact["first_day"], cell.first_day)
        fact["customers"] += cell.new
        fact["churned"] += cell.new - cell.active
        fact["repeat"] += cell.repeat
        fact["orders"] += cell.orders
        fact["revenue"] += cell.revenue
        if cell.period == cell.cohort:
            fact["first_period_repeat"] = cell.repeat
    return [facts[cohort] for cohort in sorted(facts)]


def split_facts(
    session: Session, scope: Scope, cells: list[Cell]
) -> dict[str, dict[str, tuple[int, int, int]]]:
    """Per split and group: (customers who could have churned, churned,
    repeat). Only the customers a split knows about (rated, delayed, with a
    ticket) are read, by their rows; the last group of each split is the
    rest, from the cells' totals."""
    dialect = session.get_bind().dialect.name
    selects = [
        f"""SELECT '{name}', {group}, {_count(FIRST_ROW)}, {_count(ACTIVE_ROW)},
                   {_count(REPEAT_ROW)}
            FROM {source} JOIN customer_activity
              ON customer_activity.shop_id = :shop
             AND customer_activity.customer_id = {source}.customer_id
            WHERE day <= :as_of AND {GROWN} GROUP BY 2"""
        for name, (source, group, _) in SPLITS.items()
    ]
    statement = (
        f"WITH {_ratings_cte()}, {_delays_cte()}, {_support_cte(dialect)} "
        + " UNION ALL ".join(selects)
    )
    known: dict[str, dict[str, tuple[int, int, int]]] = {name: {} for name in SPLITS}
    for split, group, n, active, repeat in session.execute(_params(statement), scope.params()):
        known[split][group] = (int(n), int(active), int(repeat))
    totals = (
        sum(c.grown_new for c in cells),
        sum(c.grown_active for c in cells),
        sum(c.grown_repeat for c in cells),
    )
    found: dict[str, dict[str, tuple[int, int, int]]] = {}
    for name, (_, _, groups) in SPLITS.items():
        rest = tuple(t - sum(g[i] for g in known[name].values()) for i, t in enumerate(totals))
        counts = known[name] | {groups[-1]: rest}
        found[name] = {g: (n, n - active, repeat) for g, (n, active, repeat) in counts.items()}
    return found


def trend_periods(scope: Scope, periods: int = TREND_PERIODS) -> list[tuple[date, date]]:
    """(first day, last day) of the last `periods` periods, the last one cut
    at the snapshot date."""
    starts = [period_start(scope.as_of, scope.period)]
    for _ in range(periods - 1):
        starts.insert(0, period_start(starts[0] - timedelta(days=1), scope.period))
    return [
        (first, min(next_period(first, scope.period) - timedelta(days=1), scope.as_of))
        for first in starts
    ]


def active_changes(session: Session, scope: Scope, since: date) -> list[tuple[date, int]]:
    """(day, change): from the end of `day` on, `change` more (or fewer)
    customers are active, from the activity rows after `since`.

    A customer is active at the end of day t when they ordered in
    (t - window, t], and exactly one of their rows is the first in that
    window: the one with t - window < day <= t whose previous day, if any, is
    at or before t - window. So a row counts its customer from the end of
    max(day, previous day + window) until before the end of day + window,
    and the active customers of any day are a count of rows, not a
    COUNT(DISTINCT). A row on or before `since` counts for no day after
    since + window, nor does its being a later row's previous day change
    that row's span then."""
    dialect = session.get_bind().dialect.name
    reopened = _plus_days(dialect, "previous_day", scope.window_days)
    rows = "FROM customer_activity WHERE shop_id = :shop AND day <= :as_of AND day > :since"
    statement = f"""
      SELECT CASE WHEN previous_day IS NULL OR {reopened} <= day THEN day ELSE {reopened} END,
             COUNT(*)
      {rows} GROUP BY 1
      UNION ALL
      SELECT {_plus_days(dialect, "day", scope.window_days)}, -COUNT(*) {rows} GROUP BY 1"""
    result = session.execute(_params(statement), scope.params(since=since))
    return [(_date(day), int(change)) for day, change in result]


def active_at(days: list[date], changes: list[tuple[date, int]]) -> dict[date, int]:
    """Customers active at the end of each of `days` (sorted): the sum of
    the `active_changes` on or before it."""
    steps = [0] * (len(days) + 1)
    for day, change in changes:
        steps[bisect_left(days, day)] += change
    return dict(zip(days, accumulate(steps), strict=False))


def period_retention(
    session: Session, scope: Scope, acquired: dict[date, int], periods: int = TREND_PERIODS
) -> list[dict]:
    """S, E, N and the rate for the last `periods` periods up to the
    snapshot: S active at the end of the day before the period, E at the
    end of its last day, N the customers acquired during it, which is the
    period's cohort (`acquired`, cohort start -> size)."""
    bounds = trend_periods(scope, periods)
    days = sorted({day for first, last in bounds for day in (first - timedelta(days=1), last)})
    since = days[0] - timedelta(days=scope.window_days)
    active = active_at(days, active_changes(session, scope, since))
    rows = []
    for first, last in bounds:
        s, e = active[first - timedelta(days=1)], active[last]
        n = acquired.get(first, 0)
        rate = period_retention_rate(s, e, n)
        rows.append({
            "period": period_label(first, scope.period), "start": first.isoformat(),
            "end": last.isoformat(), "active_at_start": s, "active_at_end": e, "acquired": n,
            "rate": None if rate is None else round(rate, 1),
        })  # fmt: skip
    return rows


def at_risk(session: Session, scope: Scope, limit: int = AT_RISK_LIMIT) -> list[dict]:
    """Active customers past their usual interval, the longest overdue
    first. Only the rows in the churn window ending on the snapshot date are
    read: an active customer's last row is there, and its days and orders
    before (which only grow) give their counts."""
    dialect = session.get_bind().dialect.name
    since = _days(dialect, "last_day", ":as_of")
    usual = (
        f"CASE WHEN days > 1 THEN {_days(dialect, 'first_day', 'last_day')} / (days - 1)"
        f" ELSE {scope.window_days // 2} END"
    )
    statement = f"""
      WITH {_ratings_cte()},
      active AS (
        SELECT customer_id, MIN(first_day) AS first_day, MAX(day) AS last_day,
               MAX(orders_before + orders) AS orders, MAX(days_before) + 1 AS days
        FROM customer_activity
        WHERE shop_id = :shop AND day > :cutoff AND day <= :as_of
        GROUP BY customer_id
      )
      SELECT active.customer_id, last_day, {since} AS since, {usual} AS usual, orders,
             ratings.rating,
             EXISTS (SELECT 1 FROM delay_episodes e JOIN orders o
                       ON o.id = e.order_id AND o.shop_id = e.shop_id
                     WHERE e.shop_id = :shop AND o.customer_id = active.customer_id
                       AND e.detected_at < :end
                       AND (e.resolved_at IS NULL OR e.resolved_at >= :end)) AS open_delay
      FROM active LEFT JOIN ratings ON ratings.customer_id = active.customer_id
      WHERE {since} > {usual}
      ORDER BY {since} DESC, active.customer_id LIMIT {int(limit)}"""
    return [
        {"customer_id": c, "last_order_day": _date(last), "days_since": int(since_days),
         "usual_interval_days": int(usual_days), "orders": int(orders), "last_rating": rating,
         "open_delay": bool(open_delay)}
        for c, last, since_days, usual_days, orders, rating, open_delay in session.execute(
            _params(statement), scope.params()
        )
    ]  # fmt: skip


# --- the report ------------------------------------------------------------------


def _rate(part: int, whole: int) -> dict:
    interval = wilson_interval(part, whole)
    return {"count": part, "percent": percent(part, whole), "interval": interval}


def build_report(session: Session, scope: Scope, currency: str, progress=None) -> dict:
    """Every figure of the report, as a JSON-ready document of aggregates."""
    step = progress or (lambda _label: None)
    cells = matrix_cells(session, scope)
    step("matrix")
    facts = cohort_facts(cells)
    step("cohorts")
    splits = split_facts(session, scope, cells)
    step("splits")
    trend = period_retention(session, scope, {f["cohort"]: f["customers"] for f in facts})
    step("period retention")

    by_cohort: dict[date, list] = {}
    for cell in cells:
        by_cohort.setdefault(cell.cohort, []).append(
            (cell.period, cell.customers, cell.orders, cell.revenue)
        )
    cohorts = []
    for fact in facts:
        cohort, size = fact["cohort"], fact["customers"]
        age = period_offset(cohort, period_start(scope.as_of, scope.period), scope.period)
        counts = {
            period_offset(cohort, start, scope.period): (customers, orders, revenue)
            for start, customers, orders, revenue in by_cohort.get(cohort, [])
        }
        # Nobody in it ordered first a whole window before the snapshot date.
        too_young = fact["first_day"] > scope.cutoff
        orders, revenue = fact["orders"], fact["revenue"]
        cohorts.append({
            "cohort": cohort.isoformat(),
            "label": period_label(cohort, scope.period),
            "customers": size,
            "cells": [
                {"offset": offset, "customers": counts.get(offset, (0,))[0],
                 "percent": percent(counts.get(offset, (0,))[0], size),
                 "orders": counts.get(offset, (0, 0))[1],
                 "revenue": str(counts.get(offset, (0, 0, Decimal("0.00")))[2])}
                for offset in range(age + 1)
            ],
            "too_young": too_young,
            "churned": None if too_young else fact["churned"],
            "churn_rate": None if too_young else percent(fact["churned"], size),
            "repeat_customers": fact["repeat"],
            "repeat_rate": percent(fact["repeat"], size),
            "orders": orders,
            "revenue": str(revenue),
            "revenue_per_customer": str(_money(revenue / size)),
            "shopify": {
                "customers": size,
                "retention_rates": [percent(fact["first_period_repeat"], size)] + [
                    percent(counts.get(offset, (0,))[0], size) for offset in range(1, age + 1)
                ],
                "sales": str(revenue),
                "average_order_value": str(_money(revenue / orders)),
                "amount_spent_per_customer": str(_money(revenue / size)),
                "net_sales": None,
            },
        })  # fmt: skip
    customers = sum(f["customers"] for f in facts)
    grown = [f for f, c in zip(facts, cohorts, strict=True) if not c["too_young"]]
    revenue = sum((f["revenue"] for f in facts), Decimal("0.00"))
    split_report = {}
    for name, (_, _, groups) in SPLITS.items():
        split_report[name] = [
            {"group": group, "customers": n, "churned": _rate(churned, n),
             "repeat": _rate(repeat, n)}
            for group in groups
            for n, churned, repeat in [splits[name].get(group, (0, 0, 0))]
        ]  # fmt: skip
    return {
        "as_of": scope.as_of.isoformat(),
        "period": scope.period,
        "window_days": scope.window_days,
        "timezone": scope.timezone.key,
        "currency": currency,
        "offsets": max((len(c["cells"]) for c in cohorts), default=0),
        "cohorts": cohorts,
        "totals": {
            "customers": customers,
            "churned": sum(f["churned"] for f in grown),
            "in_grown_cohorts": sum(f["customers"] for f in grown),
            "churn_rate": percent(
                sum(f["churned"] for f in grown), sum(f["customers"] for f in grown)
            ),
            "repeat_rate": percent(sum(f["repeat"] for f in facts), customers),
            "revenue": str(revenue),
            "revenue_per_customer": str(_money(revenue / customers)) if customers else None,
        },
        "period_retention": trend,
        "splits": split_report,
    }
