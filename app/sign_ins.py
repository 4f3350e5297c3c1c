"""What a standalone page session was signed in with, and whether that still
holds: a session lives no longer than the credential that opened it.

A page session is a signed cookie, so nothing on the server can delete it.
Instead the cookie names its credential (an API token's id, a sign-in link's
issue and expiry times, or the install itself) and every request asks the
database whether that credential still works. Revoking a token, revoking the
shop's sign-in links, a link's expiry and an uninstall (or a reinstall after
one) therefore sign out everyone who came in through it, at their next
request. A session also ends `MAX_AGE` after sign-in, whatever opened it, so
a copied cookie does not work for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from app import sign_in_links
from app.models import ApiToken, Shop

MAX_AGE = timedelta(hours=24)
VIA = ("token", "link", "install")


@dataclass(frozen=True)
class SignIn:
    shop_id: int
    via: str  # one of VIA
    since: float  # when the session was opened (POSIX seconds)
    token_id: int | None = None  # via "token"
    link_issued: float | None = None  # via "link"
    link_expires: float | None = None

    def to_cookie(self) -> list:
        return [
            self.shop_id, self.via, self.since, self.token_id, self.link_issued, self.link_expires,
        ]  # fmt: skip

    @classmethod
    def from_cookie(cls, value: object) -> SignIn | None:
        """None for anything but what `to_cookie` wrote (an older session
        that named only its shop included: it is signed out)."""
        if not isinstance(value, list) or len(value) != 6:
            return None
        shop_id, via, since, token_id, issued, expires = value
        numbers_or_none = (token_id, issued, expires)
        if not (
            isinstance(shop_id, int)
            and via in VIA
            and isinstance(since, int | float)
            and all(v is None or isinstance(v, int | float) for v in numbers_or_none)
        ):
            return None
        return cls(shop_id, via, since, token_id, issued, expires)


def holds(session: Session, sign_in: SignIn, now: datetime) -> Shop | None:
    """The shop, if the session's credential still works at `now`."""
    if now.timestamp() - sign_in.since > MAX_AGE.total_seconds():
        return None
    shop = session.get(Shop, sign_in.shop_id)
    if shop is None or shop.uninstalled_at is not None:
        return None
    if sign_in.since < shop.installed_at.timestamp():
        return None  # opened before a reinstall
    if sign_in.via == "token":
        live = session.exec(
            select(ApiToken.id).where(
                ApiToken.id == sign_in.token_id,
                ApiToken.shop_id == shop.id,
                ApiToken.revoked_at.is_(None),
            )
        ).first()
        return shop if live is not None else None
    if sign_in.via == "link":
        if sign_in.link_expires is None or sign_in.link_issued is None:
            return None
        if now.timestamp() > sign_in.link_expires:
            return None
        if sign_in_links.is_revoked(shop, sign_in.link_issued):
            return None
    return shop
