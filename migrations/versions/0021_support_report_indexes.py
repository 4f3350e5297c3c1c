"""Indexes for the support report's periods, so that its cost follows the
tickets of the period and not the years of history behind it: tickets
closed in a period, surveys sent and answered in it, orders placed in it,
and a ticket's order (when the customer first asked about a delay).
bench/support_report.py: 10 years of 30 tickets a day.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_tickets_shop_closed", "tickets", ["shop_id", "closed_at"]),
    ("ix_tickets_shop_order", "tickets", ["shop_id", "order_id"]),
    ("ix_surveys_shop_sent", "surveys", ["shop_id", "sent_at"]),
    ("ix_surveys_shop_answered", "surveys", ["shop_id", "answered_at"]),
    ("ix_orders_shop_placed", "orders", ["shop_id", "shopify_created_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
