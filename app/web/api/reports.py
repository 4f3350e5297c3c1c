"""The support team's report: CSAT, helpdesk KPIs, contact rate, proactive
coverage and the service level (definitions in `app.support_metrics`)."""

from __future__ import annotations

import csv
import io

from flask import Response
from sqlmodel import Session

from app.models import Shop
from app.support_metrics import TICKET_COLUMNS, Filters, support_report
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.schemas import SupportReport, SupportReportQuery


def report_for(shop: Shop, query: SupportReportQuery, session: Session) -> dict:
    """The report the query asks for; the page and the CSV use it too."""
    filters = Filters(agent=query.agent, channel=query.channel, type=query.type, tier=query.tier)
    return support_report(
        session, shop.id, shop.timezone, query.from_, query.to, filters, runtime().clock.now()
    )


@api.route("GET", "/reports/support", query=SupportReportQuery, response=SupportReport)
def get_support_report(query: SupportReportQuery):
    """The period's figures beside the previous period's, with the counts
    behind every percentage, the low ratings and the service level."""
    with Session(runtime().engine) as session:
        return SupportReport.model_validate(
            report_for(session.get(Shop, shop_id()), query, session)
        )


@api.route("GET", "/reports/support.csv", query=SupportReportQuery, media_type="text/csv")
def get_support_csv(query: SupportReportQuery):
    """The report as CSV: one row per ticket opened in the period, then the
    aggregate figures (this period and the previous one)."""
    with Session(runtime().engine) as session:
        report = report_for(session.get(Shop, shop_id()), query, session)
    out = io.StringIO()
    writer = csv.writer(out)
    columns = list(TICKET_COLUMNS)
    writer.writerow(columns)
    for line in report["tickets"]:
        writer.writerow([cell(line[name]) for name in columns])
    writer.writerow([])
    writer.writerow(["figure", "this period", "count", "of", "previous period", "count", "of"])
    for name, now in report["current"].items():
        before = report["previous"][name]
        if isinstance(now, dict) and "percent" in now:
            writer.writerow([name, now["percent"], now["count"], now["of"],
                             before["percent"], before["count"], before["of"]])  # fmt: skip
        elif isinstance(now, int | float) or now is None:
            writer.writerow([name, now, "", "", before, "", ""])
    name = f"support-{query.from_}-{query.to}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def cell(value: object) -> object:
    """A customer's comment must not run as a formula when the CSV is opened
    in a spreadsheet (OWASP "CSV injection"): a leading =, +, -, @, tab or CR
    is quoted away with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
