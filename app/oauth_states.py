"""The `state` of Shopify's authorization code grant, kept server-side and
good for one callback.

A state kept only in the signed session cookie could be replayed: whoever held
a copy of the cookie could bring it back, within its lifetime, with another
authorization code. Here the nonce is also a row, and the callback deletes
that row in one statement: of two callbacks with the same state, only one
deletes it, on SQLite and PostgreSQL alike. The callers commit.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session

from app.models import OAuthState

# Time for the merchant to read Shopify's consent screen and accept.
LIFETIME = timedelta(minutes=10)


def issue(session: Session, shop: str, now: datetime) -> str:
    """A new state for an install of `shop`; drops the states that expired."""
    session.exec(delete(OAuthState).where(OAuthState.expires_at <= now))
    nonce = secrets.token_urlsafe(24)
    session.add(OAuthState(nonce=nonce, shop_domain=shop, expires_at=now + LIFETIME))
    return nonce


def consume(session: Session, nonce: str, shop: str, now: datetime) -> bool:
    """Whether `nonce` is a live state issued for `shop`; it is gone after."""
    result = session.exec(
        delete(OAuthState).where(
            OAuthState.nonce == nonce,
            OAuthState.shop_domain == shop,
            OAuthState.expires_at > now,
        )
    )
    return result.rowcount == 1
