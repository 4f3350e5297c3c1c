"""customer_activity: what came before each row (the customer's previous
counted day, their orders and days before it), so the retention job counts
each customer by one row of theirs with plain sums instead of
COUNT(DISTINCT) or a pass grouped by customer.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 21:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


EARLIER = """FROM customer_activity earlier
             WHERE earlier.shop_id = customer_activity.shop_id
               AND earlier.customer_id = customer_activity.customer_id
               AND earlier.day < customer_activity.day"""


def upgrade() -> None:
    with op.batch_alter_table("customer_activity", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_day", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("orders_before", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("days_before", sa.Integer(), server_default="0", nullable=False)
        )
    # The rows already kept: what app.retention_facts now writes with each order.
    op.execute(
        f"""UPDATE customer_activity SET
              previous_day = (SELECT MAX(earlier.day) {EARLIER}),
              orders_before = (SELECT COALESCE(SUM(earlier.orders), 0) {EARLIER}),
              days_before = (SELECT COUNT(*) {EARLIER})"""
    )


def downgrade() -> None:
    with op.batch_alter_table("customer_activity", schema=None) as batch_op:
        batch_op.drop_column("days_before")
        batch_op.drop_column("orders_before")
        batch_op.drop_column("previous_day")
