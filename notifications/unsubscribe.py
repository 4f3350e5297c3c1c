"""Signed unsubscribe links: one tap, no login, and a link cannot be bent to
unsubscribe another address or another shop (the payload is signed)."""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

from app.config import Settings

SALT = "careloop.unsubscribe"


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def unsubscribe_url(settings: Settings, shop_id: int, channel: str, address: str) -> str:
    token = _serializer(settings.secret_key).dumps({"s": shop_id, "c": channel, "a": address})
    return f"{settings.public_url}/u/{token}"


def read_token(secret_key: str, token: str) -> tuple[int, str, str] | None:
    """(shop id, channel, address) from a token we signed; None otherwise."""
    try:
        data = _serializer(secret_key).loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not {"s", "c", "a"} <= data.keys():
        return None
    return int(data["s"]), str(data["c"]), str(data["a"])
