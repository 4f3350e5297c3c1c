"""Importing the shop's order and customer history from Shopify."""

from __future__ import annotations

from sqlmodel import Session

from app import history_import
from app.models import Shop
from app.shop_tokens import NoAccessToken
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.schemas import ImportStatus
from integrations.shopify_admin import AdminError
from integrations.shopify_auth import OAuthError


@api.route("GET", "/imports", response=ImportStatus, errors=(404,))
def get_import():
    """How the import of the shop's history is going."""
    with Session(runtime().engine) as session:
        run = history_import.latest(session, shop_id())
    if run is None:
        return error_response(404, "not_found", "no import has been started for this shop")
    return ImportStatus.model_validate(history_import.describe(run))


@api.route("POST", "/imports", response=ImportStatus, status=202, errors=(409, 502))
def post_import():
    """Start importing the shop's history (or answer the one under way)."""
    rt = runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        try:
            run = history_import.begin(session, rt, session.get(Shop, shop_id()))
        except NoAccessToken as exc:  # not installed through Shopify: nothing to call
            return error_response(409, "no_access_token", f"cannot start the import: {exc}")
        except (AdminError, OAuthError) as exc:
            return error_response(502, "shopify_unavailable", f"cannot start the import: {exc}")
        session.commit()
    return ImportStatus.model_validate(history_import.describe(run))
