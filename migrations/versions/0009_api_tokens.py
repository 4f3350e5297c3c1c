"""api tokens: several per shop, each valid until revoked

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-04 16:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_api_tokens_shop_id"), "api_tokens", ["shop_id"], unique=False)
    # The token each shop has today keeps working.
    op.execute(
        "INSERT INTO api_tokens (shop_id, token_hash, created_at) "
        "SELECT id, api_token_hash, installed_at FROM shops WHERE api_token_hash IS NOT NULL"
    )
    # The column's unique constraint goes with it (PostgreSQL drops it with the
    # column; on SQLite the batch copy leaves it out).
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.drop_column("api_token_hash")


def downgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("api_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_unique_constraint("shops_api_token_hash_key", ["api_token_hash"])
    # One token per shop again: the newest one still valid.
    op.execute(
        "UPDATE shops SET api_token_hash = (SELECT token_hash FROM api_tokens "
        "WHERE api_tokens.shop_id = shops.id AND revoked_at IS NULL "
        "ORDER BY created_at DESC, id DESC LIMIT 1)"
    )
    op.drop_index(op.f("ix_api_tokens_shop_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
