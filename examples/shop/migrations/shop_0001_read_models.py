"""The shop's read-model tables (``examples.shop.models``), on a branch of their own.

A service keeps its read models next to the toolkit's ``cqrs`` branch; this
revision lives in ``examples/shop/migrations`` and is added as one more
version location (``examples.shop.migrate.alembic_config`` does it), so
``alembic upgrade heads`` brings up both branches.

Revision ID: shop_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "shop_0001"
down_revision: str | None = None
branch_labels = ("shop",)
depends_on: str | None = None

MONEY = sa.Numeric(14, 2)
TS = postgresql.TIMESTAMP(timezone=True)
ZERO = sa.text("0")


def upgrade() -> None:
    op.create_table(
        "order_summary",
        sa.Column("order_id", sa.Text(), primary_key=True),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("placed_at", TS, nullable=False),
        sa.Column("payment_status", sa.Text(), nullable=False),
        sa.Column("stock_status", sa.Text(), nullable=False),
        sa.Column("shipment_id", sa.Text(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_order_summary_customer", "order_summary", ["customer_id", "placed_at"])
    op.create_table(
        "customer_profiles",
        sa.Column("customer_id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("orders_placed", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("orders_cancelled", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("orders_delivered", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("total_spent", MONEY, server_default=ZERO, nullable=False),
    )
    op.create_table(
        "customer_history",
        sa.Column("customer_id", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_customer_history_at", "customer_history", ["customer_id", "at"])
    op.create_table(
        "inventory_levels",
        sa.Column("sku", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("on_hand", "reserved", "available", "shipped", "rejections")
        ),
    )
    op.create_table(
        "daily_sales",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("orders_placed", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("orders_cancelled", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("gross", MONEY, server_default=ZERO, nullable=False),
        sa.Column("refunded", MONEY, server_default=ZERO, nullable=False),
    )
    op.create_table(
        "shipment_tracking",
        sa.Column("shipment_id", sa.Text(), primary_key=True),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("carrier", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("tracking_number", sa.Text(), nullable=True),
        sa.Column("dispatched_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
    )
    op.create_index("ix_shipment_tracking_status", "shipment_tracking", ["status", "carrier"])
    op.create_table(
        "payments_ledger",
        sa.Column("entry_id", sa.Uuid(), primary_key=True),
        sa.Column("payment_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("provider_ref", sa.Text(), nullable=True),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_payments_ledger_payment", "payments_ledger", ["payment_id"])
    op.create_table(
        "notification_outbox",
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", TS, nullable=True),
    )
    op.create_index(
        "ix_notification_outbox_unsent",
        "notification_outbox",
        ["created_at"],
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    for table in (
        "notification_outbox", "payments_ledger", "shipment_tracking", "daily_sales",
        "inventory_levels", "customer_history", "customer_profiles", "order_summary",
    ):  # fmt: skip
        op.drop_table(table)
