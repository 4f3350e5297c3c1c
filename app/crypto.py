"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

`CARELOOP_ENCRYPTION_KEYS` holds one or more keys: the first encrypts, all
decrypt, so a key is rotated by putting the new one first, re-encrypting
(`careloop secrets rotate`), then dropping the old one.
"""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBox:
    def __init__(self, keys: tuple[str, ...]):
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Raises `InvalidToken` if no configured key opens it."""
        return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        """The same secret, encrypted under the first key."""
        return self._fernet.rotate(token.encode()).decode()


def digest(secret: str) -> str:
    """SHA-256 of a credential we only ever compare (API tokens, URL keys): a
    database leak does not leak working credentials, and lookup by digest
    leaves no secret-dependent comparison to time."""
    return hashlib.sha256(secret.encode()).hexdigest()


def mask(secret: str) -> str:
    """What we may show of a secret: enough to recognise it, not to use it."""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"


__all__ = ["InvalidToken", "SecretBox", "digest", "mask"]
