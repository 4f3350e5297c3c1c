"""E-mail addresses as we accept them: settings (the sender), the API and
the notification channels share one definition, so that an address the
settings accept is one the channels can send from."""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.headerregistry import Address

# A dot-atom domain (RFC 5322 §3.2.3 / §3.6.4 `id-right`), as hosts are written.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


# RFC 5322 §3.2.3 dot-atom addresses, the form nearly every address takes; any
# other form goes through the standard library's full address parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*")


def address(addr_spec: str) -> str:
    """`addr_spec` as it is written in a header; ValueError if it is not one."""
    if _DOT_ATOM_ADDRESS.fullmatch(addr_spec):
        return addr_spec
    if any(ch in addr_spec for ch in "\r\n"):
        raise ValueError("Header values may not contain linefeed or carriage return characters")
    try:
        parsed = Address(addr_spec=addr_spec)
    except (ValueError, IndexError, HeaderParseError) as exc:  # the header parser's errors
        raise ValueError(f"invalid address {addr_spec!r}: {exc}") from exc
    if not parsed.username or not parsed.domain:
        raise ValueError(f"invalid address {addr_spec!r}")
    return parsed.addr_spec


def sender_problem(addr_spec: str) -> str | None:
    """Why `addr_spec` cannot be a sender address (None if it can): a bare
    address whose domain can also name our Message-IDs."""
    try:
        domain = address(addr_spec).rpartition("@")[2]
        if not DOMAIN.fullmatch(domain):
            raise ValueError(f"not a domain name: {domain!r}")
    except ValueError as exc:
        return str(exc)
    return None
