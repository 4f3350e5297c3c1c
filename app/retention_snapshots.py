"""Retention snapshots: the report of a shop as of a date, computed in the
database (`app.retention`) and stored, so that pages and the API load at once
and the trend across snapshots can be drawn.

    compute (reads only) ──> write (one transaction: the old snapshot of the
                             same date and period out, the new one in)

A crash while computing writes nothing, so the previous snapshot stays; the
replacement itself commits whole or not at all. Snapshots hold aggregates
only; the at-risk list names customers by our own id, and customers/redact
deletes their rows (`app.privacy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, exists
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import CustomerActivity, Order, RetentionAtRisk, RetentionSnapshot, Shop
from app.retention import DEFAULT_PERIOD, PERIODS, Scope, at_risk, build_report
from app.retention_facts import counted, rebuild_shop

Progress = Callable[[str], None]
# Steps `take_snapshot` reports to `progress`, for a progress bar's length.
STEPS = ("facts", "matrix", "cohorts", "splits", "period retention", "at risk", "stored")


@dataclass(frozen=True)
class SnapshotRequest:
    """What to compute; None takes the shop's own setting or yesterday."""

    as_of: date | None = None
    period: str = DEFAULT_PERIOD
    window_days: int | None = None

    def __post_init__(self):
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}")


def _facts_missing(session: Session, shop: Shop) -> bool:
    """Orders that predate the facts table (or a time zone change) need a rebuild."""
    latest = session.exec(
        select(RetentionSnapshot.timezone)
        .where(RetentionSnapshot.shop_id == shop.id)
        .order_by(RetentionSnapshot.computed_at.desc())
    ).first()
    if latest is not None:
        return latest != shop.timezone
    has_facts = session.exec(select(exists().where(CustomerActivity.shop_id == shop.id))).one()
    has_orders = session.exec(select(exists().where(Order.shop_id == shop.id, counted()))).one()
    return has_orders and not has_facts


def take_snapshot(
    engine: Engine,
    shop_id: int,
    now: datetime,
    request: SnapshotRequest = SnapshotRequest(),
    progress: Progress | None = None,
) -> RetentionSnapshot:
    step = progress or (lambda _label: None)
    with Session(engine) as session:
        shop = session.get(Shop, shop_id)
        timezone, currency = ZoneInfo(shop.timezone), shop.currency
        if _facts_missing(session, shop):
            rebuild_shop(session, shop_id)
            session.commit()
        scope = Scope(
            shop_id=shop_id,
            as_of=request.as_of or now.astimezone(timezone).date() - timedelta(days=1),
            period=request.period,
            window_days=request.window_days or shop.churn_window_days,
            timezone=timezone,
        )
    step("facts")
    with Session(engine) as session:
        report = build_report(session, scope, currency, step)
        risk = at_risk(session, scope)
    step("at risk")
    report["at_risk"] = len(risk)
    totals = report["totals"]
    with Session(engine, expire_on_commit=False) as session:
        old = select(RetentionSnapshot.id).where(
            RetentionSnapshot.shop_id == shop_id,
            RetentionSnapshot.as_of == scope.as_of,
            RetentionSnapshot.period == scope.period,
        )
        session.exec(
            delete(RetentionAtRisk).where(
                RetentionAtRisk.shop_id == shop_id, RetentionAtRisk.snapshot_id.in_(old)
            )
        )
        session.exec(delete(RetentionSnapshot).where(RetentionSnapshot.id.in_(old)))
        snapshot = RetentionSnapshot(
            shop_id=shop_id, as_of=scope.as_of, period=scope.period,
            window_days=scope.window_days, timezone=timezone.key, currency=currency,
            customers=totals["customers"], churned=totals["churned"],
            eligible=totals["in_grown_cohorts"], computed_at=now,
            report=json.dumps(report, sort_keys=True),
        )  # fmt: skip
        session.add(snapshot)
        session.flush()
        for row in risk:
            session.add(RetentionAtRisk(shop_id=shop_id, snapshot_id=snapshot.id, **row))
        session.commit()
    step("stored")
    return snapshot


def latest_snapshot(
    session: Session, shop_id: int, period: str = DEFAULT_PERIOD, as_of: date | None = None
) -> RetentionSnapshot | None:
    query = select(RetentionSnapshot).where(
        RetentionSnapshot.shop_id == shop_id, RetentionSnapshot.period == period
    )
    if as_of is not None:
        query = query.where(RetentionSnapshot.as_of == as_of)
    return session.exec(query.order_by(RetentionSnapshot.as_of.desc())).first()


def at_risk_rows(session: Session, snapshot: RetentionSnapshot) -> list[RetentionAtRisk]:
    return list(
        session.exec(
            select(RetentionAtRisk)
            .where(
                RetentionAtRisk.shop_id == snapshot.shop_id,
                RetentionAtRisk.snapshot_id == snapshot.id,
            )
            .order_by(RetentionAtRisk.days_since.desc(), RetentionAtRisk.customer_id)
        ).all()
    )


def trend(
    session: Session, shop_id: int, period: str = DEFAULT_PERIOD, limit: int = 90
) -> list[dict]:
    """Churn and repeat rate of the latest snapshots, oldest first."""
    rows = session.exec(
        select(RetentionSnapshot)
        .where(RetentionSnapshot.shop_id == shop_id, RetentionSnapshot.period == period)
        .order_by(RetentionSnapshot.as_of.desc())
        .limit(limit)
    ).all()
    points = []
    for snapshot in reversed(rows):
        totals = json.loads(snapshot.report)["totals"]
        points.append({
            "as_of": snapshot.as_of.isoformat(), "customers": snapshot.customers,
            "churn_rate": totals["churn_rate"], "repeat_rate": totals["repeat_rate"],
        })  # fmt: skip
    return points


def headline(session: Session, shop_id: int) -> dict | None:
    """The latest monthly snapshot's headline figures (for a Home page), or
    None before the first snapshot."""
    snapshot = latest_snapshot(session, shop_id)
    if snapshot is None:
        return None
    report = json.loads(snapshot.report)
    totals = report["totals"]
    return {
        "as_of": snapshot.as_of.isoformat(),
        "customers": totals["customers"],
        "churn_rate": totals["churn_rate"],
        "repeat_rate": totals["repeat_rate"],
        "revenue_per_customer": totals["revenue_per_customer"],
        "currency": snapshot.currency,
        "at_risk": report["at_risk"],
        "window_days": snapshot.window_days,
    }


def report_document(
    session: Session, shop_id: int, period: str = DEFAULT_PERIOD, as_of: date | None = None
) -> dict | None:
    """The stored report (latest, or of `as_of`) with its at-risk list and
    the trend across snapshots: what the page, the JSON and the CSV show."""
    snapshot = latest_snapshot(session, shop_id, period, as_of)
    if snapshot is None:
        return None
    document = json.loads(snapshot.report)
    document["computed_at"] = snapshot.computed_at.isoformat()
    document["at_risk"] = [
        {
            "customer_id": row.customer_id,
            "last_order_day": row.last_order_day.isoformat(),
            "days_since": row.days_since,
            "usual_interval_days": row.usual_interval_days,
            "orders": row.orders,
            "last_rating": row.last_rating,
            "open_delay": row.open_delay,
        }
        for row in at_risk_rows(session, snapshot)
    ]
    document["trend"] = trend(session, shop_id, period)
    return document


CSV_COLUMNS = ("section", "cohort", "offset", "group", "customers", "count", "percent", "revenue")


def report_rows(document: dict) -> list[tuple]:
    """The report as flat rows (CSV): the matrix cells, churn per cohort,
    and the splits, each with counts beside percentages."""
    rows: list[tuple] = []
    for cohort in document["cohorts"]:
        for cell in cohort["cells"]:
            rows.append(("matrix", cohort["label"], cell["offset"], "", cohort["customers"],
                         cell["customers"], cell["percent"], cell["revenue"]))  # fmt: skip
        rows.append(("churn", cohort["label"], "", "too young" if cohort["too_young"] else "",
                     cohort["customers"], cohort["churned"], cohort["churn_rate"],
                     cohort["revenue"]))  # fmt: skip
        rows.append(("repeat", cohort["label"], "", "", cohort["customers"],
                     cohort["repeat_customers"], cohort["repeat_rate"], ""))  # fmt: skip
    for split, groups in document["splits"].items():
        for group in groups:
            for measure in ("churned", "repeat"):
                rows.append((f"{split} {measure}", "", "", group["group"], group["customers"],
                             group[measure]["count"], group[measure]["percent"], ""))  # fmt: skip
    return rows
