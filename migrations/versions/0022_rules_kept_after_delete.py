"""Rules: a deleted rule is kept (marked `deleted_at`), so the messages it
sent still say which rule sent them; and rules stored before a rule's
template kind had to be its trigger's own are mended to it (their messages
could never render).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each trigger's own template kind (app.rule_book.TRIGGERS, as of this revision).
OWN_KIND = {
    "shipped": "shipping", "out_for_delivery": "out_for_delivery",
    "ready_for_pickup": "ready_for_pickup", "delivered": "delivered",
    "delay_not_shipped": "delay", "delay_estimate": "delay", "delay_stalled": "delay",
    "delay_exception": "delay", "delay_delivered_followup": "delay_followup",
    "birthday": "birthday",
}  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deleted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    rules = sa.table(
        "rules", sa.column("trigger", sa.String), sa.column("template_kind", sa.String)
    )
    for trigger, kind in OWN_KIND.items():
        op.execute(
            rules.update()
            .where(rules.c.trigger == trigger, rules.c.template_kind != kind)
            .values(template_kind=kind)
        )


def downgrade() -> None:
    op.execute("DELETE FROM rules WHERE deleted_at IS NOT NULL")
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
