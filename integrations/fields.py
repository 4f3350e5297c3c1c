"""Fields of an outside payload, read with their type, length and range checked.

A verified signature says who sent a body, not that its values fit: a signed
payload may still hold a string where an object belongs, a 65-character order
name, an id past BIGINT or an amount past our NUMERIC column. Every reader
here raises `PayloadError` naming the field, so that the inbox dead-letters
such a message at once with a readable reason, instead of the worker failing
on it with an AttributeError, or the database with a DataError, attempt after
attempt. The limits are our columns' (`app.models`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

from app.clock import parse_timestamp
from app.events import PayloadError

# Shopify's ids are 64-bit; we keep them in PostgreSQL BIGINT (signed).
MAX_ID = 2**63 - 1
# NUMERIC(14, 2): twelve digits before the point.
MAX_AMOUNT = Decimal("1e12")
# More items than any real payload carries; a bound on the size of one IN (...).
MAX_ITEMS = 10_000
# ISO 8601 with fractions and an offset is about 35 characters.
_MAX_TIMESTAMP_CHARS = 64


def mapping(value: object, name: str) -> Mapping:
    """An object (JSON `{}`); absent or null is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError(f"{name} must be an object, not {_kind(value)}")
    return value


def mappings(value: object, name: str) -> list[Mapping]:
    """A list of objects; absent or null is an empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{name} must be a list, not {_kind(value)}")
    if len(value) > MAX_ITEMS:
        raise PayloadError(f"{name} has more than {MAX_ITEMS} items")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise PayloadError(f"{name}[{index}] must be an object, not {_kind(item)}")
    return value


def text(value: object, name: str, limit: int) -> str | None:
    """A string of at most `limit` characters once stripped; None when absent
    or blank. A number is taken as its digits (an order number may come as
    either). Too long is refused, not cut: a cut name or address is a wrong one."""
    found = _string(value, name)
    if found is not None and len(found) > limit:
        raise PayloadError(f"{name} is longer than {limit} characters")
    return found


def clip(value: object, name: str, limit: int) -> str | None:
    """Free text we only show (a carrier's message, a tracking link): cut to
    `limit` characters rather than refused."""
    found = _string(value, name)
    return found[:limit] if found is not None else None


def identifier(value: object, name: str) -> int:
    """A positive 64-bit id, as a JSON number or a string of ASCII digits."""
    found = optional_identifier(value, name)
    if found is None:
        raise PayloadError(f"{name} is required")
    return found


def optional_identifier(value: object, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > 19:
            raise PayloadError(f"{name} is out of range for an id")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{name} must be an id (digits), not {_kind(value)}")
    if not 0 < value <= MAX_ID:
        raise PayloadError(f"{name} is out of range for an id")
    return value


def identifiers(value: object, name: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PayloadError(f"{name} must be a list, not {_kind(value)}")
    if len(value) > MAX_ITEMS:
        raise PayloadError(f"{name} has more than {MAX_ITEMS} items")
    return tuple(identifier(item, f"{name}[{index}]") for index, item in enumerate(value))


def reference(value: object) -> int | None:
    """An order id a provider may carry in a free-form reference field: the
    id when it is one, None when the field holds anything else (a provider's
    own order reference is not an error)."""
    if isinstance(value, int | str) and not isinstance(value, bool):
        digits = str(value).strip()
        if digits.isascii() and digits.isdigit() and 0 < len(digits) <= 19:
            number = int(digits)
            return number if number <= MAX_ID else None
    return None


def timestamp(value: object, name: str) -> datetime | None:
    """An ISO 8601 timestamp with its offset, in UTC; None when absent."""
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"{name} must be an ISO 8601 timestamp, not {_kind(value)}")
    if value is not None and len(value) > _MAX_TIMESTAMP_CHARS:
        raise PayloadError(f"{name} is not an ISO 8601 timestamp")
    try:
        return parse_timestamp(value)
    except ValueError as exc:  # e.g. 9999-12-31T23:00-05:00 is past year 9999 in UTC
        problem = (
            "is out of range" if "out of range" in str(exc) else "is not an ISO 8601 timestamp"
        )
        raise PayloadError(f"{name} {problem}") from None


def required_timestamp(value: object, name: str) -> datetime:
    found = timestamp(value, name)
    if found is None:
        raise PayloadError(f"missing {name}")
    return found


def amount(value: object, name: str) -> Decimal | None:
    """A money amount, as a decimal string or a JSON number; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float) or len(str(value)) > 32:
        raise PayloadError(f"{name} must be an amount, not {_kind(value)}")
    try:
        found = Decimal(str(value).strip())
    except InvalidOperation:
        raise PayloadError(f"{name} is not an amount") from None
    if not found.is_finite() or abs(found) >= MAX_AMOUNT:
        raise PayloadError(f"{name} is out of range for an amount")
    return found


def _string(value: object, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string, not {_kind(value)}")
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL, and no real name or address has one.
        raise PayloadError(f"{name} contains a NUL character")
    return value.strip() or None


def _kind(value: object) -> str:
    """The JSON type of a value, for messages (never the value: it may be long)."""
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "a list"
        case Mapping():
            return "an object"
    return type(value).__name__
