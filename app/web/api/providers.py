"""The outside providers a shop connects, by kind: fulfillment and tracking
(`/fulfillment-providers`), helpdesks (`/helpdesk-providers`)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import Session, select

from app import providers
from app.models import ProviderConnection
from app.providers import ProviderConfigError, connect, describe_connection, webhook_url
from app.web.api.base import api, shop_id
from app.web.context import runtime
from app.web.errors import error_response
from app.web.schemas import (
    IssuedConnection,
    ProviderAddress,
    ProviderKind,
    ProviderList,
    ProviderSecret,
)

KIND = "<any(fulfillment, helpdesk):kind>-providers"


@api.route("GET", f"/{KIND}", path=ProviderKind, response=ProviderList)
def get_providers(path: ProviderKind):
    """The shop's connections of one kind (secrets shown only as hints)."""
    with Session(runtime().engine) as session:
        connections = session.exec(
            select(ProviderConnection)
            .where(ProviderConnection.shop_id == shop_id(), ProviderConnection.kind == path.kind)
            .order_by(ProviderConnection.provider)
        ).all()
    return ProviderList(providers=[describe_connection(c) for c in connections])


@api.route(
    "PUT", f"/{KIND}/<provider>", path=ProviderAddress, body=ProviderSecret,
    response=IssuedConnection, status=201, errors=(404, 422),
)  # fmt: skip
def put_provider(path: ProviderAddress, body: ProviderSecret):
    """Connect a provider (or replace its secret): answers the webhook URL to
    give the provider, once; it is not stored in a form we can show again."""
    if providers.provider(path.kind, path.provider) is None:
        return error_response(404, "not_found", f"{path.provider} is not a {path.kind} provider")
    rt, provider = runtime(), path.provider
    with Session(rt.engine) as session:
        try:
            issued = connect(session, rt.secrets, shop_id(), provider, body.secret, rt.clock.now())
        except ProviderConfigError as exc:  # well-formed, but not a usable secret
            return error_response(422, "invalid_connection", str(exc))
        session.commit()
        document = describe_connection(issued.connection)
    url = webhook_url(rt.settings.public_url, provider, issued.url_key)
    return IssuedConnection(**document, webhook_url=url, secret_header=issued.secret_header)


@api.route("DELETE", f"/{KIND}/<provider>", status=204, errors=(404,))
def delete_provider(kind: str, provider: str):
    """Disconnect a provider: its webhooks are refused from then on."""
    deleted = 0
    if providers.provider(kind, provider) is not None:  # no other name has a connection
        with Session(runtime().engine) as session:
            deleted = session.exec(
                delete(ProviderConnection).where(
                    ProviderConnection.shop_id == shop_id(),
                    ProviderConnection.kind == kind,
                    ProviderConnection.provider == provider,
                )
            ).rowcount
            session.commit()
    if not deleted:
        return error_response(404, "not_found", f"no {kind} connection {provider[:40]!r}")
    return "", 204
