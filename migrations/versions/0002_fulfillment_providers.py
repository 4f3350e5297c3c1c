"""fulfillment providers: connections, shipment facts, parked events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:40:31.217569
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fulfillment_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("url_key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column("secret_hint", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "provider"),
        sa.UniqueConstraint("url_key_hash"),
    )
    with op.batch_alter_table("fulfillment_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fulfillment_connections_shop_id"), ["shop_id"], unique=False
        )

    op.create_table(
        "parked_references",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("inbox_id", sa.Integer(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"],
            ["inbox.id"],
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("parked_references", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_parked_references_inbox_id"), ["inbox_id"], unique=False
        )
        batch_op.create_index("ix_parked_references_ref", ["shop_id", "reference"], unique=False)

    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_detail", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("promised_ship_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("shipped_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("estimated_delivery_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("delivered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("last_scan_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            "ix_shipments_shop_tracking", ["shop_id", "tracking_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index("ix_shipments_shop_tracking")
        batch_op.drop_column("last_scan_at")
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("estimated_delivery_at")
        batch_op.drop_column("shipped_at")
        batch_op.drop_column("promised_ship_at")
        batch_op.drop_column("status_detail")

    with op.batch_alter_table("parked_references", schema=None) as batch_op:
        batch_op.drop_index("ix_parked_references_ref")
        batch_op.drop_index(batch_op.f("ix_parked_references_inbox_id"))

    op.drop_table("parked_references")
    with op.batch_alter_table("fulfillment_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fulfillment_connections_shop_id"))

    op.drop_table("fulfillment_connections")
