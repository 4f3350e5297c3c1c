"""Retention reports (JSON and CSV) and the shop's churn window."""

from __future__ import annotations

import csv
import io

from flask import Response
from sqlmodel import Session

from app.models import Shop
from app.retention_snapshots import CSV_COLUMNS, report_document, report_rows
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.schemas import (
    RetentionQuery,
    RetentionReport,
    RetentionSettings,
    RetentionSettingsChange,
)

NO_SNAPSHOT = (
    "no retention snapshot for this shop yet: the nightly job or `careloop retention run` makes one"
)


def _document(query: RetentionQuery) -> dict | None:
    with Session(runtime().engine) as session:
        return report_document(session, shop_id(), query.period, query.as_of)


@api.route(
    "GET", "/reports/retention", query=RetentionQuery, response=RetentionReport, errors=(404,)
)
def get_retention_report(query: RetentionQuery):
    """Cohorts, churn, the split by rating, delay and support, customers at
    risk and the trend: the latest snapshot, or the one of `as_of`."""
    document = _document(query)
    if document is None:
        return error_response(404, "not_found", NO_SNAPSHOT)
    return RetentionReport.model_validate(document)


@api.route(
    "GET", "/reports/retention.csv", query=RetentionQuery, media_type="text/csv", errors=(404,)
)
def get_retention_csv(query: RetentionQuery):
    """The same report as CSV rows (section, cohort, offset, group, counts, percent)."""
    document = _document(query)
    if document is None:
        return error_response(404, "not_found", NO_SNAPSHOT)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(report_rows(document))
    name = f"retention-{document['period']}-{document['as_of']}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@api.route("GET", "/settings/retention", response=RetentionSettings)
def get_retention_settings():
    """The churn window: days without an order after which a customer has churned."""
    with Session(runtime().engine) as session:
        return RetentionSettings.model_validate(session.get(Shop, shop_id()), from_attributes=True)


@api.route("PATCH", "/settings/retention", body=RetentionSettingsChange, response=RetentionSettings)
def patch_retention_settings(body: RetentionSettingsChange):
    """Change the churn window; the next snapshot uses it."""
    with Session(runtime().engine) as session:
        shop = session.get(Shop, shop_id())
        shop.churn_window_days = body.churn_window_days
        session.add(shop)
        session.commit()
        return RetentionSettings.model_validate(shop, from_attributes=True)
