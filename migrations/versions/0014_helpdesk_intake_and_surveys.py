"""Helpdesk intake and CSAT surveys: ticket flags and tags, the survey due
time (indexed, for the sweep), status changes, survey reminders and alerts,
and the shop's support settings.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 18:25:35.045419
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "support_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("survey_delay_minutes", sa.Integer(), nullable=False),
        sa.Column("survey_cooldown_days", sa.Integer(), nullable=False),
        sa.Column("reminder_after_hours", sa.Integer(), nullable=True),
        sa.Column("skip_tags", sa.Text(), nullable=False),
        sa.Column("force_tags", sa.Text(), nullable=False),
        sa.Column("type_map", sa.Text(), nullable=False),
        sa.Column("support_email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("recovery_message", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id"),
    )
    op.create_table(
        "ticket_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("previous", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "ticket_id", "at", "status"),
    )
    with op.batch_alter_table("ticket_status_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_status_changes_ticket", ["shop_id", "ticket_id", "at"], unique=False
        )

    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch_op.add_column(
            sa.Column("reminder_due_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("reminded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("alerted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_surveys_reminder_due_at"), ["reminder_due_at"], unique=False
        )

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("spam", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("merged", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("agent_started", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("internal", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("survey_due_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_tickets_survey_due_at"), ["survey_due_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_survey_due_at"))
        batch_op.drop_column("survey_due_at")
        batch_op.drop_column("internal")
        batch_op.drop_column("agent_started")
        batch_op.drop_column("merged")
        batch_op.drop_column("spam")
        batch_op.drop_column("tags")

    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_surveys_reminder_due_at"))
        batch_op.drop_column("alerted_at")
        batch_op.drop_column("reminded_at")
        batch_op.drop_column("reminder_due_at")
        batch_op.drop_column("locale")

    with op.batch_alter_table("ticket_status_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_status_changes_ticket")

    op.drop_table("ticket_status_changes")
    op.drop_table("support_settings")
