"""The countries an order can ship to, as Shopify's CountryCode names them:
CLDR's two-letter territories (ISO 3166-1, and the few Shopify also uses,
such as XK, AC and TA), without CLDR's groupings and placeholders (EU, UN,
ZZ, ...) and the codes reserved for places no parcel is addressed by (CP
Clipperton, DG Diego Garcia, EA Ceuta and Melilla, IC the Canary Islands:
their addresses carry FR, IO and ES). Babel carries CLDR, so the list
follows its releases."""

from __future__ import annotations

from babel import Locale

_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ", "CP", "CQ", "DG", "EA", "IC"}
COUNTRIES = frozenset(
    code for code in Locale("en").territories
    if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
)  # fmt: skip


def country_problem(code: str) -> str | None:
    """Why `code` is not a country an order ships to, or None."""
    if code in COUNTRIES:
        return None
    return f"{code[:8]!r} is not an ISO country code such as US"
