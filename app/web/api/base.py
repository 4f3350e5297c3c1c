"""What every API resource shares: the blueprint, the shop's authentication,
and the `api` object that operations are declared on. Every query a view
makes is scoped by `shop_id()`: another shop's order is simply not found."""

from __future__ import annotations

import functools

from flask import Blueprint, g, request
from sqlmodel import Session

from app.install import shop_for_session_token
from app.shops import TOKEN_PREFIX, shop_for_token
from app.web.context import runtime
from app.web.contract import Api
from app.web.errors import error_response

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def require_shop(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return error_response(401, "unauthorized", "send Authorization: Bearer <shop token>")
        token = token.strip()
        if token.startswith(TOKEN_PREFIX):
            with Session(runtime().engine) as session:
                shop = shop_for_token(session, token)
        else:  # an embedded admin page's App Bridge session token
            shop = shop_for_session_token(runtime(), token)
        if shop is None:
            return error_response(401, "unauthorized", "the token is not valid for any shop")
        g.shop_id = shop.id
        return view(*args, **kwargs)

    return wrapper


def shop_id() -> int:
    """The shop the request's token belongs to."""
    return g.shop_id


api = Api(bp, require_shop)
