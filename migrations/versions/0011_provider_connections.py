"""provider connections of every kind: fulfillment_connections becomes
provider_connections, with the provider's kind

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 17:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fulfillment_connections", schema=None) as batch_op:
        batch_op.drop_index("ix_fulfillment_connections_shop_id")
    op.rename_table("fulfillment_connections", "provider_connections")
    with op.batch_alter_table("provider_connections", schema=None) as batch_op:
        # Every connection made before kinds existed is a fulfillment provider's.
        batch_op.add_column(
            sa.Column(
                "kind",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="fulfillment",
            )
        )
        batch_op.create_index("ix_provider_connections_shop_id", ["shop_id"], unique=False)
    with op.batch_alter_table("provider_connections", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("provider_connections", schema=None) as batch_op:
        batch_op.drop_index("ix_provider_connections_shop_id")
        batch_op.drop_column("kind")
    op.rename_table("provider_connections", "fulfillment_connections")
    with op.batch_alter_table("fulfillment_connections", schema=None) as batch_op:
        batch_op.create_index("ix_fulfillment_connections_shop_id", ["shop_id"], unique=False)
