"""foundation: shops, customers, orders, shipments, timeline, inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-26 12:26:24.283166
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shops",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("api_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("installed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("uninstalled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("api_token_hash"),
        sa.UniqueConstraint("domain"),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("shopify_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("first_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("last_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("email_consent", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("email_consent_updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("sms_consent", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("sms_consent_updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("shopify_created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("snapshot_updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("redacted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "shopify_id"),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customers_shop_id"), ["shop_id"], unique=False)

    op.create_table(
        "data_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("shopify_request_id", sa.BigInteger(), nullable=True),
        sa.Column("customer_shopify_id", sa.BigInteger(), nullable=True),
        sa.Column("requested_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("export", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("data_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_requests_shop_id"), ["shop_id"], unique=False)

    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("delivery_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("api_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("triggered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("processed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("customer_ref", sa.BigInteger(), nullable=True),
        sa.Column("order_ref", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "source", "delivery_id", name="uq_inbox_delivery"),
        sa.UniqueConstraint("shop_id", "source", "topic", "event_id", name="uq_inbox_event"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_inbox_shop_status", ["shop_id", "status"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("shopify_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column("total_price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("financial_status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("fulfillment_status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("cancelled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("shopify_created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("snapshot_updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("state_changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("redacted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "shopify_id"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_shop_id"), ["shop_id"], unique=False)
        batch_op.create_index("ix_orders_shop_state", ["shop_id", "state"], unique=False)

    op.create_table(
        "shipments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("carrier", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("tracking_number", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("tracking_url", sa.Text(), nullable=True),
        sa.Column("source_updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "source", "external_id"),
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shipments_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_shipments_shop_id"), ["shop_id"], unique=False)

    op.create_table(
        "order_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("from_status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("to_status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("cause", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("inbox_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.create_index("ix_order_events_order", ["shop_id", "order_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.drop_index("ix_order_events_order")

    op.drop_table("order_events")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_shop_id"))
        batch_op.drop_index(batch_op.f("ix_shipments_order_id"))

    op.drop_table("shipments")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_shop_state")
        batch_op.drop_index(batch_op.f("ix_orders_shop_id"))
        batch_op.drop_index(batch_op.f("ix_orders_customer_id"))

    op.drop_table("orders")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_shop_status")
        batch_op.drop_index("ix_inbox_due")

    op.drop_table("inbox")
    with op.batch_alter_table("data_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_requests_shop_id"))

    op.drop_table("data_requests")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_shop_id"))

    op.drop_table("customers")
    op.drop_table("shops")
