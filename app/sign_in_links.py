"""Signed sign-in links: a merchant sends one to their support team, who
sign in to the shop's pages outside the Shopify admin without an API token.

A link carries the shop, when it was issued and when it expires, signed with
`CARELOOP_SECRET_KEY` (itsdangerous, HMAC-SHA256): nothing is stored per link.
Revoking sets `shops.sign_in_links_revoked_at`, and every link issued up to
that moment stops working; links issued afterwards work. Times come from the
caller's clock, so tests and the server agree on "now".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session

from app.models import Shop

SALT = "careloop.sign-in-link"
DEFAULT_LIFETIME = timedelta(hours=24)
MAX_LIFETIME = timedelta(days=30)


class LinkError(ValueError):
    """Bad input for a sign-in link (a lifetime out of bounds)."""


def issue(
    shop: Shop, secret_key: str, now: datetime, lifetime: timedelta = DEFAULT_LIFETIME
) -> str:
    """A new sign-in link token for `shop`, valid for `lifetime`."""
    if not timedelta(minutes=5) <= lifetime <= MAX_LIFETIME:
        raise LinkError("a sign-in link lives between 5 minutes and 30 days")
    issued = now.timestamp()
    return URLSafeSerializer(secret_key, salt=SALT).dumps(
        [shop.id, issued, issued + lifetime.total_seconds()]
    )


@dataclass(frozen=True)
class Link:
    shop: Shop
    issued: float  # POSIX seconds
    expires: float


def open_link(session: Session, secret_key: str, link: str, now: datetime) -> Link | None:
    """The link's installed shop and times, or None: a bad signature, an
    expired or revoked link, an uninstalled shop."""
    if not link or len(link) > 300:
        return None
    try:
        shop_id, issued, expires = URLSafeSerializer(secret_key, salt=SALT).loads(link)
    except (BadSignature, TypeError, ValueError):
        return None
    if not all(isinstance(v, int | float) for v in (shop_id, issued, expires)):
        return None
    if now.timestamp() > expires:
        return None
    shop = session.get(Shop, int(shop_id))
    if shop is None or shop.uninstalled_at is not None:
        return None
    if is_revoked(shop, issued):
        return None
    return Link(shop, issued, expires)


def is_revoked(shop: Shop, issued: float) -> bool:
    revoked = shop.sign_in_links_revoked_at
    return revoked is not None and issued <= revoked.timestamp()


def revoke_all(session: Session, shop: Shop, now: datetime) -> None:
    """Every link issued so far stops working. The caller commits."""
    shop.sign_in_links_revoked_at = now
    session.add(shop)
