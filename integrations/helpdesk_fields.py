"""Reading the values helpdesks send: the parts Gorgias, Zendesk and our
generic format share. Helpdesk bodies are often filled from templates (a
Gorgias HTTP integration, a Zendesk trigger), so a number or a boolean may
come as a string ("12345", "true") and an absent value as "".
"""

from __future__ import annotations

from datetime import datetime

from app.events import PayloadError
from integrations import fields

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def flag(value: object, name: str) -> bool | None:
    """A boolean, or its spelling in a rendered template; None when absent."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise PayloadError(f"{name} must be true or false")


def ident(value: object, name: str) -> str | None:
    """An id as text (a number or a string); None when absent or blank."""
    if isinstance(value, bool):
        raise PayloadError(f"{name} must be an id")
    return fields.text(value, name, 128)


def required_ident(value: object, name: str) -> str:
    found = ident(value, name)
    if found is None:
        raise PayloadError(f"missing {name}")
    return found


def utc_time(value: object, name: str) -> datetime | None:
    """ISO 8601; a time without an offset is UTC (Gorgias writes
    "2021-01-07T13:00:00.123456", in UTC)."""
    if value == "":
        return None
    if isinstance(value, str) and "T" in value and not _has_offset(value):
        value = value + "+00:00"
    return fields.timestamp(value, name)


def _has_offset(value: str) -> bool:
    clock = value.partition("T")[2]
    return clock.endswith(("Z", "z")) or "+" in clock or "-" in clock


def tags(value: object, name: str) -> tuple[str, ...] | None:
    """Tags as a list of names, a list of {"name": ...} objects, or one
    comma-separated string (a rendered template); None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        items: list[object] = [part for part in value.split(",")]
    elif isinstance(value, list):
        items = [item.get("name") if isinstance(item, dict) else item for item in value]
    else:
        raise PayloadError(f"{name} must be a list of tags")
    found = (fields.text(item, name, 100) for item in items[:100])
    return tuple(tag.lower() for tag in found if tag)


def email(value: object, name: str) -> str | None:
    found = fields.text(value, name, 320)
    return found.lower() if found and "@" in found else None


def phone(value: object, name: str) -> str | None:
    return fields.text(value, name, 32)
