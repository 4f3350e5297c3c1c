"""Shops and their CareLoop API tokens.

A token is shown once, when it is issued; we keep only its SHA-256, so a
database leak does not leak working tokens. Lookup is by hash (an index hit),
which leaves no secret-dependent comparison to time.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlmodel import Session, select

from app.crypto import digest
from app.models import ApiToken, Shop
from app.rule_book import create_defaults
from integrations.shopify import is_shop_domain

TOKEN_PREFIX = "clp_"


class ShopError(ValueError):
    """Bad input for a shop operation; the message says what is wrong."""


def add_shop(session: Session, domain: str, now: datetime, name: str = "") -> tuple[Shop, str]:
    """Register a shop (or reinstall an uninstalled one) and issue a token."""
    domain = domain.strip().lower()
    if not is_shop_domain(domain):
        raise ShopError(f"{domain!r} is not a shop domain of the form <name>.myshopify.com")
    shop = install_shop(session, domain, now, name)
    session.flush()
    return shop, issue_token(session, shop, now)


def install_shop(session: Session, domain: str, now: datetime, name: str = "") -> Shop:
    """The shop, created, or brought back if it had uninstalled; with the
    default proactive rules if it has none (a reinstall keeps its own)."""
    shop = session.exec(select(Shop).where(Shop.domain == domain)).first()
    if shop is None:
        shop = Shop(domain=domain, name=name or domain.split(".")[0], installed_at=now)
    elif shop.uninstalled_at is not None:
        shop.uninstalled_at, shop.installed_at = None, now
    session.add(shop)
    session.flush()
    create_defaults(session, shop.id, now)
    return shop


def issue_token(session: Session, shop: Shop, now: datetime) -> str:
    """A new API token for the shop. The ones issued before keep working
    until revoked: `careloop demo` issuing one must not sign out whoever
    signed in with the token `careloop run` printed."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(shop_id=shop.id, token_hash=digest(token), created_at=now))
    session.flush()
    return token


def revoke_tokens(session: Session, shop: Shop, now: datetime) -> int:
    """Every token of the shop stops working (a leak); returns how many."""
    tokens = session.exec(
        select(ApiToken).where(ApiToken.shop_id == shop.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
        session.add(token)
    session.flush()
    return len(tokens)


def shop_for_token(session: Session, token: str) -> Shop | None:
    """The installed shop a token belongs to, if any."""
    found = token_and_shop(session, token)
    return found[1] if found else None


def token_and_shop(session: Session, token: str) -> tuple[int, Shop] | None:
    """The working token's id and its installed shop, if any: a page session
    signed in with it remembers the id (`app.sign_ins`)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.exec(
        select(ApiToken.id, Shop)
        .select_from(Shop)
        .join(ApiToken, ApiToken.shop_id == Shop.id)
        .where(
            ApiToken.token_hash == digest(token),
            ApiToken.revoked_at.is_(None),
            Shop.uninstalled_at.is_(None),
        )
    ).first()
    return (row[0], row[1]) if row else None


def tokens_of(session: Session, shop_id: int) -> list[ApiToken]:
    """The shop's tokens, newest first (hashes and dates only)."""
    return list(
        session.exec(
            select(ApiToken).where(ApiToken.shop_id == shop_id).order_by(ApiToken.id.desc())
        ).all()
    )


def revoke_token(session: Session, shop_id: int, token_id: int, now: datetime) -> bool:
    """One of the shop's tokens stops working; False if the shop has no such
    working token."""
    token = session.exec(
        select(ApiToken).where(
            ApiToken.shop_id == shop_id, ApiToken.id == token_id, ApiToken.revoked_at.is_(None)
        )
    ).first()
    if token is None:
        return False
    token.revoked_at = now
    session.add(token)
    return True
