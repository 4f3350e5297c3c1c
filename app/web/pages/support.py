"""The support team's report page (`/app/support`): the same figures as
`GET /api/v1/reports/support`, with the definitions written beside them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import abort, g, render_template, request
from flask_babel import gettext
from pydantic import ValidationError
from sqlmodel import Session

from app.models import Shop
from app.support_metrics import DEFINITIONS, Filters, support_report
from app.web.context import runtime
from app.web.contract import describe
from app.web.pages.base import bp, signed_in
from app.web.pages.home import Headline, home_headline
from app.web.schemas import TICKET_CHANNELS, SupportReportQuery

DEFAULT_DAYS = 30
REPORT_PARAMETERS = {"from", "to", "agent", "channel", "type", "tier"}


@bp.get("/support")
@signed_in
def support():
    now = runtime().clock.now()
    today = now.astimezone(ZoneInfo(g.shop.timezone)).date()
    # Only the report's own parameters: the embedded admin adds its own
    # (shop, host, id_token, ...) to every page's query string.
    asked = {k: v for k, v in request.args.items() if k in REPORT_PARAMETERS and v != ""}
    asked.setdefault("from", (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat())
    asked.setdefault("to", today.isoformat())
    try:
        query = SupportReportQuery.model_validate(asked)
    except ValidationError as exc:
        abort(400, description=describe(exc))
    filters = Filters(agent=query.agent, channel=query.channel, type=query.type, tier=query.tier)
    with Session(runtime().engine) as session:
        report = support_report(
            session, g.shop.id, g.shop.timezone, query.from_, query.to, filters, now
        )
    return render_template(
        "app/support.html",
        shop=g.shop,
        report=report,
        query=query,
        channels=TICKET_CHANNELS,
        definitions=DEFINITIONS,
        chart=volume_chart(report["current"]["volume_per_day"]),
    )


def volume_chart(per_day: dict[str, list[dict]]) -> dict:
    """Bars of tickets per day, laid out here so the page draws plain SVG."""
    totals = [(day, sum(row["tickets"] for row in rows)) for day, rows in per_day.items()]
    peak = max((total for _, total in totals), default=0) or 1
    width = max(len(totals), 1) * 14
    bars = [
        {"x": i * 14, "height": round(total * 100 / peak), "day": day, "tickets": total}
        for i, (day, total) in enumerate(totals)
    ]
    return {"width": width, "bars": bars, "peak": peak}


@home_headline
def csat_headline(session: Session, shop: Shop, now: datetime) -> Headline | None:
    """The last 30 days' CSAT and service level, once there are responses."""
    today = now.astimezone(ZoneInfo(shop.timezone)).date()
    report = support_report(
        session, shop.id, shop.timezone, today - timedelta(days=DEFAULT_DAYS - 1), today,
        Filters(), now,
    )  # fmt: skip
    csat = report["current"]["csat"]
    if not csat["of"]:
        return None
    level = report["service_level"]["overall"]
    return Headline(
        title=gettext("CSAT, last 30 days"),
        figure=f"{csat['percent']:g} %",
        detail=gettext("%(count)s of %(of)s rated 4 or 5; service level: %(level)s",
                       count=csat["count"], of=csat["of"],
                       level=(level or gettext("not enough data")).replace("_", " ")),
        endpoint="pages.support",
    )  # fmt: skip
