"""URL converters for ids, so that a path with an id no column can hold is
simply not found (404), instead of reaching the database and failing there."""

from __future__ import annotations

from werkzeug.routing import BaseConverter, ValidationError

SHOPIFY_ID_MAX = 2**63 - 1  # Shopify's ids: BIGINT columns
ROW_ID_MAX = 2**31 - 1  # our own rows' ids: INTEGER columns


class _BoundedId(BaseConverter):
    regex = r"[0-9]{1,19}"  # ASCII digits only: int() would also read "٣"
    maximum: int

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= self.maximum:
            raise ValidationError()  # no rule matches: 404
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))


class ShopifyIdConverter(_BoundedId):
    maximum = SHOPIFY_ID_MAX


class RowIdConverter(_BoundedId):
    maximum = ROW_ID_MAX


CONVERTERS = {"shopify_id": ShopifyIdConverter, "row_id": RowIdConverter}
