"""Shops' Shopify access tokens: kept encrypted, refreshed before they expire.

Shopify's expiring offline tokens last an hour and come with a refresh token
(mandatory for apps from 2027). We refresh a few minutes before expiry, and
once more when the Admin API answers 401 anyway (a token revoked early).
Tokens never leave this module in a log line or an error message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlmodel import Session, select

from app.crypto import SecretBox
from app.models import Shop
from integrations.shopify_admin import AdminAuthError, AdminClient
from integrations.shopify_auth import OAuthClient, TokenSet

if TYPE_CHECKING:
    from app.runtime import Runtime

REFRESH_AHEAD = timedelta(minutes=5)
T = TypeVar("T")


class NoAccessToken(LookupError):
    """The shop has no usable token: it must open the app (or be reinstalled)."""


def store_tokens(shop: Shop, tokens: TokenSet, box: SecretBox) -> None:
    shop.access_token_encrypted = box.encrypt(tokens.access_token)
    shop.access_token_expires_at = tokens.expires_at
    if tokens.refresh_token:
        shop.refresh_token_encrypted = box.encrypt(tokens.refresh_token)
        shop.refresh_token_expires_at = tokens.refresh_expires_at
    shop.scopes = ",".join(sorted(tokens.scopes))


def forget_tokens(shop: Shop) -> None:
    """On uninstall: the tokens are dead at Shopify; keep no copy."""
    shop.access_token_encrypted = shop.refresh_token_encrypted = None
    shop.access_token_expires_at = shop.refresh_token_expires_at = None


def reencrypt_tokens(session: Session, box: SecretBox) -> int:
    """Re-encrypt every stored Shopify token under the first configured key."""
    count = 0
    for shop in session.exec(select(Shop).where(Shop.access_token_encrypted.is_not(None))).all():
        shop.access_token_encrypted = box.rotate(shop.access_token_encrypted)
        if shop.refresh_token_encrypted:
            shop.refresh_token_encrypted = box.rotate(shop.refresh_token_encrypted)
        session.add(shop)
        count += 1
    session.flush()
    return count


def access_token(
    session: Session, shop: Shop, box: SecretBox, oauth: OAuthClient, now: datetime,
    *, force_refresh: bool = False,
) -> str:  # fmt: skip
    """A working access token for the shop, refreshing (and storing) it when
    it is about to expire or `force_refresh` says the API refused it. The
    caller commits."""
    if shop.uninstalled_at is not None or not shop.access_token_encrypted:
        raise NoAccessToken(f"{shop.domain} has no access token")
    expiring = shop.access_token_expires_at is not None and (
        shop.access_token_expires_at - now < REFRESH_AHEAD
    )
    if not (expiring or force_refresh):
        return box.decrypt(shop.access_token_encrypted)
    if not shop.refresh_token_encrypted or (
        shop.refresh_token_expires_at is not None and shop.refresh_token_expires_at <= now
    ):
        raise NoAccessToken(f"{shop.domain}'s token expired and cannot be refreshed")
    tokens = oauth.refresh(shop.domain, box.decrypt(shop.refresh_token_encrypted))
    store_tokens(shop, tokens, box)
    session.add(shop)
    session.flush()
    return tokens.access_token


def admin_client(rt: Runtime, shop: Shop, token: str) -> AdminClient:
    return AdminClient(
        shop.domain,
        token,
        rt.settings.shopify_api_version,
        base_url=rt.settings.shopify_url_template.format(shop=shop.domain),
        timeout_seconds=rt.settings.provider_timeout_seconds,
    )


def with_admin(session: Session, rt: Runtime, shop: Shop, call: Callable[[AdminClient], T]) -> T:
    """Run `call` with an Admin API client for the shop; if Shopify answers
    401 anyway (a token revoked before its time), refresh once and retry."""
    now = rt.clock.now()
    try:
        return call(admin_client(rt, shop, access_token(session, shop, rt.secrets, rt.oauth, now)))
    except AdminAuthError:
        token = access_token(session, shop, rt.secrets, rt.oauth, now, force_refresh=True)
        return call(admin_client(rt, shop, token))
