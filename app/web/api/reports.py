"""The support team's report: CSAT, helpdesk KPIs, contact rate, proactive
coverage and the service level (definitions in `app.support_metrics`)."""

from __future__ import annotations

from sqlmodel import Session

from app.models import Shop
from app.support_metrics import Filters, support_report
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
