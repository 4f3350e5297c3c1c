"""customer_activity.previous_day: each row names the customer's counted day
before it, so the retention job counts a customer once per period or window
by their first row there instead of with COUNT(DISTINCT).

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


def upgrade() -> None:
    with op.batch_alter_table("customer_activity", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_day", sa.Date(), nullable=True))
    # The rows already kept: what app.retention_facts now writes with each order.
    op.execute(
        """UPDATE customer_activity SET previous_day = (
             SELECT MAX(earlier.day) FROM customer_activity earlier
             WHERE earlier.shop_id = customer_activity.shop_id
               AND earlier.customer_id = customer_activity.customer_id
               AND earlier.day < customer_activity.day)"""
    )


def downgrade() -> None:
    with op.batch_alter_table("customer_activity", schema=None) as batch_op:
        batch_op.drop_column("previous_day")
