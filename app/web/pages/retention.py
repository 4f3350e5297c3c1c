"""The retention page: the cohort heatmap, churn by cohort, the trend across
snapshots, what moves churn, and the customers at risk, from the stored
snapshot (`app.retention_snapshots`); charts are drawn here as inline SVG."""

from __future__ import annotations

from datetime import date, datetime

from flask import abort, g, render_template, request
from flask_babel import gettext
from sqlmodel import Session

from app.models import Shop
from app.retention import DEFAULT_PERIOD, PERIODS
from app.retention_snapshots import headline, report_document
from app.web.context import runtime
from app.web.pages.base import bp, signed_in
from app.web.pages.home import Headline, home_headline

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 640, 180, 32


def shade(percent: float | None) -> str:
    """A cell's background: darker for a larger share; the number is
    written in the cell too, so nothing depends on seeing colour."""
    if percent is None:
        return "background: #fff"
    lightness = 96 - round(percent * 0.6)
    ink = "#fff" if lightness < 60 else "#1f2933"
    return f"background: hsl(160, 55%, {lightness}%); color: {ink}"


def trend_chart(points: list[dict], key: str) -> dict | None:
    """Polyline coordinates of one rate across snapshots (0-100% bottom to top)."""
    values = [(p["as_of"], p[key]) for p in points if p[key] is not None]
    if not values:
        return None
    width = CHART_WIDTH - 2 * CHART_PAD
    step = width / max(len(values) - 1, 1)
    coordinates = [
        (
            round(CHART_PAD + i * step, 1),
            round(CHART_HEIGHT - CHART_PAD - value / 100 * (CHART_HEIGHT - 2 * CHART_PAD), 1),
            day,
            value,
        )
        for i, (day, value) in enumerate(values)
    ]
    return {
        "points": " ".join(f"{x},{y}" for x, y, _, _ in coordinates),
        "dots": coordinates,
        "first": values[0][0],
        "last": values[-1][0],
    }


@bp.get("/retention")
@signed_in
def retention():
    period = request.args.get("period") or DEFAULT_PERIOD
    if period not in PERIODS:
        abort(400, description=f"period must be one of {', '.join(PERIODS)}")
    as_of_text = request.args.get("as_of", "")
    try:
        as_of = date.fromisoformat(as_of_text) if as_of_text else None
    except ValueError:
        abort(400, description="as_of must be a date written YYYY-MM-DD")
    with Session(runtime().engine) as db:
        report = report_document(db, g.shop.id, period, as_of)
    charts = {}
    if report is not None:
        charts = {key: trend_chart(report["trend"], key) for key in ("churn_rate", "repeat_rate")}
    return render_template(
        "app/retention.html",
        shop=g.shop,
        report=report,
        period=period,
        periods=PERIODS,
        charts=charts,
        chart={"width": CHART_WIDTH, "height": CHART_HEIGHT, "pad": CHART_PAD},
        shade=shade,
    )


@home_headline
def churn_headline(session: Session, shop: Shop, now: datetime) -> Headline | None:
    """The latest snapshot's churn and customers at risk."""
    figures = headline(session, shop.id)
    if figures is None or figures["churn_rate"] is None:
        return None
    return Headline(
        title=gettext("Churn (%(days)s-day window)", days=figures["window_days"]),
        figure=f"{figures['churn_rate']:g} %",
        detail=gettext("%(n)s customers at risk, as of %(day)s",
                       n=figures["at_risk"], day=figures["as_of"]),
        endpoint="pages.retention",
    )  # fmt: skip
