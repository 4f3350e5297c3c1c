"""Customers' requests for their data (Shopify's customers/data_request)."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from app.models import DataRequest
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.schemas import DataRequestList


@api.route("GET", "/data-requests", response=DataRequestList)
def get_data_requests():
    """Every data request received, newest first, with the export we hold."""
    with Session(runtime().engine) as session:
        requests = session.exec(
            select(DataRequest)
            .where(DataRequest.shop_id == shop_id())
            .order_by(DataRequest.id.desc())
        ).all()
    return DataRequestList(
        data_requests=[
            {
                "id": r.id,
                "shopify_request_id": r.shopify_request_id,
                "customer_id": r.customer_shopify_id,
                "requested_at": r.requested_at,
                "export": json.loads(r.export),
            }
            for r in requests
        ]
    )
