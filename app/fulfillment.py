"""Fulfillment and tracking providers a shop connects: which ones we speak,
and each connection's credentials.

A connection's webhook URL is `/webhooks/fulfillment/<provider>?key=<key>`.
The key says which shop a delivery is for (providers do not send the Shopify
domain); we keep only its SHA-256, so it is shown once, when issued. The
signing secret is kept encrypted (`app.crypto`) and shown only as a hint.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType

from sqlmodel import Session, select

from app.crypto import SecretBox, digest, mask
from app.models import FulfillmentConnection
from integrations import aftership, shipbob, standard_webhooks

PROVIDERS: dict[str, ModuleType] = {
    module.SOURCE: module for module in (shipbob, aftership, standard_webhooks)
}


class ProviderConfigError(ValueError):
    """Bad input for a connection; the message says what is wrong."""


@dataclass(frozen=True)
class IssuedConnection:
    connection: FulfillmentConnection
    url_key: str  # shown once


def connect(
    session: Session,
    box: SecretBox,
    shop_id: int,
    provider: str,
    secret: str | None,
    now: datetime,
) -> IssuedConnection:
    """Create or replace a shop's connection to `provider`, with a new URL key."""
    module = PROVIDERS.get(provider)
    if module is None:
        raise ProviderConfigError(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    secret = (secret or "").strip() or None
    if secret is None and module.SECRET_REQUIRED:
        raise ProviderConfigError(f"{provider} signs its webhooks: give its signing secret")
    if secret is not None:
        try:
            module.check_secret(secret)
        except ValueError as exc:
            raise ProviderConfigError(f"{provider} secret: {exc}") from None
    url_key = secrets.token_urlsafe(32)
    connection = session.exec(
        select(FulfillmentConnection).where(
            FulfillmentConnection.shop_id == shop_id, FulfillmentConnection.provider == provider
        )
    ).first() or FulfillmentConnection(
        shop_id=shop_id, provider=provider, url_key_hash="", created_at=now, updated_at=now
    )
    connection.url_key_hash = digest(url_key)
    connection.secret_encrypted = box.encrypt(secret) if secret else None
    connection.secret_hint = mask(secret) if secret else None
    connection.updated_at = now
    session.add(connection)
    session.flush()
    return IssuedConnection(connection, url_key)


def connection_for_key(
    session: Session, provider: str, url_key: str
) -> FulfillmentConnection | None:
    if not url_key or len(url_key) > 128:
        return None
    return session.exec(
        select(FulfillmentConnection).where(
            FulfillmentConnection.url_key_hash == digest(url_key),
            FulfillmentConnection.provider == provider,
        )
    ).first()


def webhook_url(public_url: str, provider: str, url_key: str) -> str:
    return f"{public_url}/webhooks/fulfillment/{provider}?key={url_key}"


def describe_connection(connection: FulfillmentConnection) -> dict:
    return {
        "provider": connection.provider,
        "signing_secret": connection.secret_hint,
        "created_at": connection.created_at.isoformat(),
        "updated_at": connection.updated_at.isoformat(),
    }


def reencrypt_secrets(session: Session, box: SecretBox) -> int:
    """Re-encrypt every stored signing secret under the first configured key
    (the step between adding a new key and dropping the old one)."""
    connections = session.exec(
        select(FulfillmentConnection).where(FulfillmentConnection.secret_encrypted.is_not(None))
    ).all()
    for connection in connections:
        connection.secret_encrypted = box.rotate(connection.secret_encrypted)
        session.add(connection)
    session.flush()
    return len(connections)
