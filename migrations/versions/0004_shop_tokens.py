"""shop access tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:36:38.510023
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(sa.Column("access_token_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("access_token_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("refresh_token_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "refresh_token_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("scopes", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.drop_column("scopes")
        batch_op.drop_column("refresh_token_expires_at")
        batch_op.drop_column("refresh_token_encrypted")
        batch_op.drop_column("access_token_expires_at")
        batch_op.drop_column("access_token_encrypted")
