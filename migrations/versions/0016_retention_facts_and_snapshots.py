"""Retention: customer_activity (incremental facts), snapshots, customers at
risk; orders.test and shops.churn_window_days.

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-04 18:29:26.831374
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("churned", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("computed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "as_of", "period"),
    )
    with op.batch_alter_table("retention_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retention_snapshots_shop_id"), ["shop_id"], unique=False
        )

    op.create_table(
        "customer_activity",
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("shop_id", "customer_id", "day"),
    )
    with op.batch_alter_table("customer_activity", schema=None) as batch_op:
        batch_op.create_index("ix_customer_activity_shop_day", ["shop_id", "day"], unique=False)
        batch_op.create_index(
            "ix_customer_activity_shop_first_day", ["shop_id", "first_day"], unique=False
        )

    op.create_table(
        "retention_at_risk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("last_order_day", sa.Date(), nullable=False),
        sa.Column("days_since", sa.Integer(), nullable=False),
        sa.Column("usual_interval_days", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("last_rating", sa.Integer(), nullable=True),
        sa.Column("open_delay", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["retention_snapshots.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("retention_at_risk", schema=None) as batch_op:
        batch_op.create_index(
            "ix_retention_at_risk_snapshot", ["shop_id", "snapshot_id"], unique=False
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("test", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("churn_window_days", sa.Integer(), server_default="180", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.drop_column("churn_window_days")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("test")

    with op.batch_alter_table("retention_at_risk", schema=None) as batch_op:
        batch_op.drop_index("ix_retention_at_risk_snapshot")

    op.drop_table("retention_at_risk")
    with op.batch_alter_table("customer_activity", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_activity_shop_first_day")
        batch_op.drop_index("ix_customer_activity_shop_day")

    op.drop_table("customer_activity")
    with op.batch_alter_table("retention_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retention_snapshots_shop_id"))

    op.drop_table("retention_snapshots")
