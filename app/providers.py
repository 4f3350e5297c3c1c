"""Outside providers a shop connects, by kind (fulfillment and tracking;
helpdesks), which ones we speak, and each connection's credentials.

Every provider is one module in `integrations/` with the same interface
(`WebhookProvider`), registered here under its kind. A connection's webhook
URL has one shape for every kind: `/webhooks/<kind>/<provider>?key=<key>`.
The key says which shop a delivery is for (providers do not send the
Shopify domain); we keep only its SHA-256, so it is shown once, when
issued. The signing secret is kept encrypted (`app.crypto`) and shown only
as a hint.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

from sqlmodel import Session, select

from app.crypto import SecretBox, digest, mask
from app.events import Described, Event
from app.models import ProviderConnection
from integrations import aftership, gorgias, shipbob, standard_helpdesk, standard_webhooks, zendesk


class WebhookProvider(Protocol):
    """What a provider's module in `integrations/` offers: its name and
    kind, its secrets, checking a delivery at the door, and reading it in
    the worker."""

    SOURCE: str  # its name in URLs and in the inbox; unique across kinds
    KIND: str  # one of KINDS
    SECRET_REQUIRED: bool

    def check_secret(self, secret: str) -> None:
        """Raise ValueError saying what is wrong with a signing secret."""

    def authenticate(self, secret: str | None, headers, body: bytes) -> bool:
        """Whether the delivery is signed with the connection's secret."""

    def describe(self, headers, body: bytes, payload: dict) -> Described:
        """The delivery's topic, id and time; UnsupportedTopic or PayloadError."""

    def parse(self, topic: str, payload: dict, triggered_at) -> list[Event]:
        """The domain events a stored delivery carries; PayloadError."""

    def references(self, topic: str, payload: dict) -> tuple[int | None, int | None]:
        """(customer id, order id) it concerns, for redaction."""


KINDS = ("fulfillment", "helpdesk")
_MODULES = (shipbob, aftership, standard_webhooks, gorgias, zendesk, standard_helpdesk)
# Every provider by name (names are unique across kinds), and by kind.
PROVIDERS: dict[str, WebhookProvider] = {
    module.SOURCE: cast(WebhookProvider, module) for module in _MODULES
}
BY_KIND: dict[str, dict[str, WebhookProvider]] = {
    kind: {name: p for name, p in PROVIDERS.items() if kind == p.KIND} for kind in KINDS
}


def provider(kind: str, name: str) -> WebhookProvider | None:
    """The provider `name` of `kind`, or None if we speak no such one."""
    return BY_KIND.get(kind, {}).get(name)


class ProviderConfigError(ValueError):
    """Bad input for a connection; the message says what is wrong."""


@dataclass(frozen=True)
class IssuedConnection:
    connection: ProviderConnection
    url_key: str  # shown once
    # A secret we made (a provider that signs nothing, e.g. Gorgias, sends it
    # back in a header): shown once, with the header to put it in.
    secret_header: str | None = None


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
    generated = None
    if secret is None and getattr(module, "GENERATES_SECRET", False):
        secret = module.new_secret()
        generated = f"{module.SECRET_HEADER}: {secret}"
    if secret is None and module.SECRET_REQUIRED:
        raise ProviderConfigError(f"{provider} signs its webhooks: give its signing secret")
    if secret is not None:
        try:
            module.check_secret(secret)
        except ValueError as exc:
            raise ProviderConfigError(f"{provider} secret: {exc}") from None
    url_key = secrets.token_urlsafe(32)
    connection = session.exec(
        select(ProviderConnection).where(
            ProviderConnection.shop_id == shop_id, ProviderConnection.provider == provider
        )
    ).first() or ProviderConnection(
        shop_id=shop_id, kind=module.KIND, provider=provider, url_key_hash="",
        created_at=now, updated_at=now,
    )  # fmt: skip
    connection.url_key_hash = digest(url_key)
    connection.secret_encrypted = box.encrypt(secret) if secret else None
    connection.secret_hint = mask(secret) if secret else None
    connection.updated_at = now
    session.add(connection)
    session.flush()
    return IssuedConnection(connection, url_key, generated)


def connection_for_key(
    session: Session, kind: str, provider: str, url_key: str
) -> ProviderConnection | None:
    if not url_key or len(url_key) > 128:
        return None
    return session.exec(
        select(ProviderConnection).where(
            ProviderConnection.url_key_hash == digest(url_key),
            ProviderConnection.kind == kind,
            ProviderConnection.provider == provider,
        )
    ).first()


def webhook_url(public_url: str, provider: str, url_key: str) -> str:
    """Where the provider sends its webhooks: one shape for every kind."""
    return f"{public_url}/webhooks/{PROVIDERS[provider].KIND}/{provider}?key={url_key}"


def describe_connection(connection: ProviderConnection) -> dict:
    return {
        "kind": connection.kind,
        "provider": connection.provider,
        "signing_secret": connection.secret_hint,
        "created_at": connection.created_at.isoformat(),
        "updated_at": connection.updated_at.isoformat(),
    }


def reencrypt_secrets(session: Session, box: SecretBox) -> int:
    """Re-encrypt every stored signing secret under the first configured key
    (the step between adding a new key and dropping the old one)."""
    connections = session.exec(
        select(ProviderConnection).where(ProviderConnection.secret_encrypted.is_not(None))
    ).all()
    for connection in connections:
        connection.secret_encrypted = box.rotate(connection.secret_encrypted)
        session.add(connection)
    session.flush()
    return len(connections)
