"""Installing CareLoop on a shop: the tokens Shopify grants, and the webhook
subscriptions the shop must have. Called by the OAuth callback and by the
first embedded load (token exchange)."""

from __future__ import annotations

import logging

from sqlmodel import Session, select

from app import history_import, shop_jobs
from app.models import Shop
from app.runtime import Runtime
from app.shop_tokens import NoAccessToken, store_tokens, with_admin
from app.shops import install_shop
from integrations.shopify_admin import AdminError, ensure_webhook_subscriptions
from integrations.shopify_auth import OAuthError, SessionTokenError, TokenSet, verify_session_token

log = logging.getLogger(__name__)


def record_install(session: Session, rt: Runtime, domain: str, tokens: TokenSet) -> Shop:
    """Create the shop, or bring an uninstalled one back, with its new tokens.
    The caller commits."""
    shop = install_shop(session, domain, rt.clock.now())
    store_tokens(shop, tokens, rt.secrets)
    session.flush()
    return shop


def subscribe_webhooks(session: Session, rt: Runtime, shop: Shop) -> None:
    """Create or repair the shop's webhook subscriptions (idempotent). A shop
    installed through shopify.app.toml has them already; this covers shops
    installed without it. Failure is logged, not fatal: the install stands,
    and the reconciliation job (`app.reconcile`) ensures them again."""
    callback = f"{rt.settings.public_url}/webhooks/shopify"
    # Customer payloads carry the birth-date metafield only if its
    # namespace is named in the subscription.
    namespaces = (shop.birth_date_namespace,)
    try:
        report = with_admin(
            session, rt, shop,
            lambda client: ensure_webhook_subscriptions(
                client, callback, metafield_namespaces=namespaces
            ),
        )  # fmt: skip
    except (AdminError, NoAccessToken, OAuthError) as exc:
        log.error("shop %s: webhook subscriptions not ensured: %s", shop.id, exc)
        return
    log.info(
        "shop %s: webhook subscriptions %d created, %d repaired, %d in place",
        shop.id, len(report.created), len(report.updated), len(report.unchanged),
    )  # fmt: skip


AFTER_INSTALL = "shop.after_install"
RESUBSCRIBE = "shop.resubscribe"


def resubscribe_later(session: Session, shop: Shop, now) -> None:
    """Queue `resubscribe` (the shop changed what its subscriptions must
    carry, such as the birth-date namespace). The caller commits."""
    shop_jobs.enqueue_once(session, shop.id, RESUBSCRIBE, now.strftime("%Y-%m-%dT%H:%M:%S.%f"), now)


def resubscribe(rt: Runtime, shop_id: int) -> None:
    """The job: the shop's webhook subscriptions, as its settings say now."""
    with Session(rt.engine) as session:
        subscribe_webhooks(session, rt, session.get(Shop, shop_id))
        session.commit()


def after_install(session: Session, rt: Runtime, shop: Shop) -> None:
    """Queue what a fresh install needs from Shopify (`finish_install`), for
    a worker: up to fifteen Admin API calls that must not hold up the
    merchant's install request. The caller commits."""
    now = rt.clock.now()
    slot = now.strftime("%Y-%m-%dT%H:%M:%S.%f")  # one per install, in the 32 characters
    shop_jobs.enqueue_once(session, shop.id, AFTER_INSTALL, slot, now)
    rt.inbox_wakeup.set()  # an in-process worker starts on it at once


def finish_install(rt: Runtime, shop_id: int) -> None:
    """The after-install job: webhook subscriptions, and the history import
    started (its result arrives by webhook). A failure to subscribe is
    repaired by the reconciliation job; a failure to start the import fails
    the job, which is retried."""
    with Session(rt.engine) as session:
        shop = session.get(Shop, shop_id)
        subscribe_webhooks(session, rt, shop)
        session.commit()  # a token refreshed on the way
        history_import.begin(session, rt, shop)
        session.commit()


def shop_for_session_token(rt: Runtime, token: str) -> Shop | None:
    """The shop an App Bridge session token (JWT) speaks for, or None if the
    token does not verify. Installs as Shopify-managed installation asks:
    on the shop's first embedded request, or when we hold no token for it,
    the session token is exchanged for an expiring offline token and the
    shop is recorded as installed; the rest of the install is queued."""
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
        after_install(session, rt, shop)
        session.commit()
        return shop
