"""The countries an order can ship to, as Shopify's CountryCode names them:
CLDR's two-letter territories (ISO 3166-1, and the few Shopify also uses,
such as XK and AC), without CLDR's groupings and placeholders (EU, UN, ZZ,
...). Babel carries CLDR, so the list follows its releases."""

from __future__ import annotations

from babel import Locale

COUNTRIES = frozenset(
    code for code in Locale("en").territories
    if len(code) == 2 and code.isalpha() and code not in {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"}
)  # fmt: skip


def country_problem(code: str) -> str | None:
    """Why `code` is not a country an order ships to, or None."""
    if code in COUNTRIES:
        return None
    return f"{code[:8]!r} is not an ISO country code such as US"
