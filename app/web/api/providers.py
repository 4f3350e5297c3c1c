"""Fulfillment and tracking providers the shop connects."""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import Session, select

from app.fulfillment import (
    PROVIDERS,
    ProviderConfigError,
    connect,
    describe_connection,
    webhook_url,
)
from app.models import FulfillmentConnection
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.schemas import IssuedConnection, ProviderAddress, ProviderList, ProviderSecret


@api.route("GET", "/fulfillment-providers", response=ProviderList)
def get_providers():
    """The shop's connections (secrets shown only as hints)."""
    with Session(runtime().engine) as session:
        connections = session.exec(
            select(FulfillmentConnection)
            .where(FulfillmentConnection.shop_id == shop_id())
            .order_by(FulfillmentConnection.provider)
        ).all()
    return ProviderList(providers=[describe_connection(c) for c in connections])


@api.route(
    "PUT", "/fulfillment-providers/<provider>", path=ProviderAddress, body=ProviderSecret,
    response=IssuedConnection, status=201, errors=(422,),
)  # fmt: skip
def put_provider(path: ProviderAddress, body: ProviderSecret):
    """Connect a provider (or replace its secret): answers the webhook URL to
    give the provider, once; it is not stored in a form we can show again."""
    rt, provider = runtime(), path.provider
    with Session(rt.engine) as session:
        try:
            issued = connect(session, rt.secrets, shop_id(), provider, body.secret, rt.clock.now())
        except ProviderConfigError as exc:  # well-formed, but not a usable secret
            return error_response(422, "invalid_connection", str(exc))
        session.commit()
        document = describe_connection(issued.connection)
    url = webhook_url(rt.settings.public_url, provider, issued.url_key)
    return IssuedConnection(**document, webhook_url=url)


@api.route("DELETE", "/fulfillment-providers/<provider>", status=204, errors=(404,))
def delete_provider(provider: str):
    """Disconnect a provider: its webhooks are refused from then on."""
    deleted = 0
    if provider in PROVIDERS:  # any other name cannot have a connection
        with Session(runtime().engine) as session:
            deleted = session.exec(
                delete(FulfillmentConnection).where(
                    FulfillmentConnection.shop_id == shop_id(),
                    FulfillmentConnection.provider == provider,
                )
            ).rowcount
            session.commit()
    if not deleted:
        return error_response(404, "not_found", f"no {provider[:40]!r} connection")
    return "", 204
