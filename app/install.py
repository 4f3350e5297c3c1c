"""Installing CareLoop on a shop: the tokens Shopify grants, and the webhook
subscriptions the shop must have. Called by the OAuth callback and by the
first embedded load (token exchange)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session, select

from app.factory import Runtime
from app.models import Shop
from app.shop_tokens import access_token, store_tokens
from integrations.shopify_admin import AdminClient, AdminError, ensure_webhook_subscriptions
from integrations.shopify_auth import OAuthError, SessionTokenError, TokenSet, verify_session_token

log = logging.getLogger(__name__)


def record_install(session: Session, rt: Runtime, domain: str, tokens: TokenSet) -> Shop:
    """Create the shop, or bring an uninstalled one back, with its new tokens.
    The caller commits."""
    now = rt.clock.now()
    shop = session.exec(select(Shop).where(Shop.domain == domain)).first()
    if shop is None:
        shop = Shop(domain=domain, name=domain.split(".")[0], installed_at=now)
    elif shop.uninstalled_at is not None:
        shop.uninstalled_at, shop.installed_at = None, now
    store_tokens(shop, tokens, rt.secrets)
    session.add(shop)
    session.flush()
    return shop


def admin_client(rt: Runtime, shop: Shop, token: str) -> AdminClient:
    return AdminClient(
        shop.domain,
        token,
        rt.settings.shopify_api_version,
        base_url=rt.settings.shopify_url_template.format(shop=shop.domain),
        timeout_seconds=rt.settings.provider_timeout_seconds,
    )


def subscribe_webhooks(session: Session, rt: Runtime, shop: Shop, now: datetime) -> bool:
    """Create or repair the shop's webhook subscriptions (idempotent). A shop
    installed through shopify.app.toml has them already; this covers shops
    installed without it. Failure is logged, not fatal: the install stands,
    and the next call repairs what is missing."""
    try:
        token = access_token(session, shop, rt.secrets, rt.oauth, now)
        report = ensure_webhook_subscriptions(
            admin_client(rt, shop, token), f"{rt.settings.public_url}/webhooks/shopify"
        )
    except AdminError as exc:
        log.error("shop %s: webhook subscriptions not ensured: %s", shop.id, exc)
        return False
    log.info(
        "shop %s: webhook subscriptions %d created, %d repaired, %d in place",
        shop.id, len(report.created), len(report.updated), len(report.unchanged),
    )  # fmt: skip
    return True


def shop_for_session_token(rt: Runtime, token: str) -> Shop | None:
    """The shop an App Bridge session token (JWT) speaks for, or None if the
    token does not verify. On the shop's first load (Shopify-managed
    installation) or when we hold no token for it, the session token is
    exchanged for an expiring offline token and the shop is installed here."""
    now = rt.clock.now()
    try:
        claims = verify_session_token(
            token, rt.settings.shopify_api_secret, rt.settings.shopify_api_key, now
        )
    except SessionTokenError as exc:
        log.info("session token refused: %s", exc.reason)
        return None
    with Session(rt.engine, expire_on_commit=False) as session:
        shop = session.exec(select(Shop).where(Shop.domain == claims.shop)).first()
        if shop is not None and shop.uninstalled_at is None and shop.access_token_encrypted:
            return shop
        try:
            tokens = rt.oauth.exchange_session_token(claims.shop, token)
        except OAuthError as exc:
            log.error("token exchange for %s failed: %s", claims.shop, exc.reason)
            return None
        shop = record_install(session, rt, claims.shop, tokens)
        session.commit()
        subscribe_webhooks(session, rt, shop, now)
        session.commit()
        return shop
