"""The support team's report: CSAT, helpdesk KPIs, contact rate, proactive
coverage and the service level (definitions in `app.support_metrics`)."""

from __future__ import annotations

import csv
import io
import json

from flask import Response
from sqlmodel import Session

from app import service_levels
from app.models import Shop
from app.support_metrics import TICKET_COLUMNS, Filters, support_report
from app.tickets import support_settings
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.schemas import (
    ServiceLevels,
    ServiceLevelsChange,
    SupportReport,
    SupportReportQuery,
)


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


# What makes a spreadsheet read a cell as a formula (OWASP "CSV injection"),
# including the full-width forms some spreadsheets also accept.
FORMULA_START = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def cell(value: object) -> object:
    """A customer's comment (or any text from a helpdesk) must not run as a
    formula when the CSV is opened in a spreadsheet: one that starts with a
    formula character, after any spaces a spreadsheet skips, is
    quoted away with an apostrophe."""
    if isinstance(value, str) and value.lstrip(" ")[:1] in FORMULA_START:
        return "'" + value
    return value


SERVICE_LEVELS = "/settings/service-levels"


def _levels(own: dict) -> ServiceLevels:
    scale = service_levels.scale_for(own)

    def bounds(items) -> dict:
        return {b.level: b.limit for b in items}

    return ServiceLevels(own=own, scale={
        "first_response": {g: bounds(b) for g, b in scale.first_response.items()},
        "resolution": {g: bounds(b) for g, b in scale.resolution.items()},
        "satisfaction": bounds(scale.satisfaction),
        "proactivity": bounds(scale.proactivity),
        "min_sample": scale.min_sample,
    })  # fmt: skip


@api.route("GET", SERVICE_LEVELS, response=ServiceLevels)
def get_service_levels():
    """The bounds of the five levels the support report grades on."""
    with Session(runtime().engine) as session:
        return _levels(json.loads(support_settings(session, shop_id()).service_levels or "{}"))


@api.route("PATCH", SERVICE_LEVELS, body=ServiceLevelsChange, response=ServiceLevels,
           errors=(422,))  # fmt: skip
def patch_service_levels(body: ServiceLevelsChange):
    """Set the shop's own bounds for the levels given (the others stay);
    refused when a better level would not be stricter than the one below."""
    with Session(runtime().engine) as session:
        row = support_settings(session, shop_id())
        own = json.loads(row.service_levels or "{}")
        for name, value in body.model_dump(exclude_none=True).items():
            if isinstance(value, dict) and name in ("first_response", "resolution"):
                for group, limits in value.items():
                    own.setdefault(name, {}).setdefault(group, {}).update(limits)
            elif isinstance(value, dict):
                own.setdefault(name, {}).update(value)
            else:
                own[name] = value
        reason = service_levels.problem(service_levels.scale_for(own))
        if reason:
            return error_response(422, "unprocessable", reason)
        row.service_levels = json.dumps(own, sort_keys=True)
        row.updated_at = runtime().clock.now()
        session.add(row)
        session.commit()
        return _levels(own)
