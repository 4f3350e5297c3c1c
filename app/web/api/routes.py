"""Every resource of the API on one blueprint, and the OpenAPI document
generated from their declarations, served without authentication (it
describes the API and holds no shop's data)."""

from __future__ import annotations

from flask import jsonify

from app.web.api import (  # noqa: F401  (each module declares its routes on `api`)
    birthday_settings,
    data_requests,
    imports,
    inbox,
    notifications,
    orders,
    providers,
    reports,
    retention,
    rules,
    settings,
    templates,
    tickets,
)
from app.web.api.base import api, bp
from app.web.contract import openapi

__all__ = ["bp"]


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi([(bp.url_prefix, api)], title="CareLoop API", version="1"))
