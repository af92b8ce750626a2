"""Public: the shop's read models, ordinary SQLAlchemy ORM classes on the shop's own ``Base``.

The projections in ``examples.shop.projections`` keep them up to date; the
query side reads them. The Alembic revision ``shop_0001_read_models`` creates
them (``alembic upgrade heads``)::

    >>> sorted(Base.metadata.tables)[:3]
    ['customer_history', 'customer_profiles', 'daily_sales']
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Index, Integer, Numeric, Text, text
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Money = Numeric(14, 2)
Timestamp = TIMESTAMP(timezone=True)


class Base(DeclarativeBase):
    """The shop's declarative base (its ``metadata`` holds the read-model tables only)."""


class OrderSummary(Base):
    """One row per order: where it stands."""

    __tablename__ = "order_summary"

    order_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # placed, ready, shipped, delivered, cancelled
    total: Mapped[Decimal] = mapped_column(Money)
    items: Mapped[int] = mapped_column(Integer)
    placed_at: Mapped[datetime] = mapped_column(Timestamp)
    payment_status: Mapped[str] = mapped_column(Text)  # pending, paid, failed, refunded
    stock_status: Mapped[str] = mapped_column(
        Text
    )  # pending, reserved, rejected, released, shipped
    shipment_id: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_order_summary_customer", "customer_id", "placed_at"),)


class CustomerProfile(Base):
    """One row per customer, with order counters and money spent."""

    __tablename__ = "customer_profiles"

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    city: Mapped[str] = mapped_column(Text)
    active: Mapped[bool]
    orders_placed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    orders_cancelled: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    orders_delivered: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_spent: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))


class CustomerHistoryEntry(Base):
    """A customer's timeline: one row per thing that happened to them."""

    __tablename__ = "customer_history"

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    order_id: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_customer_history_at", "customer_id", "at"),)


class InventoryLevel(Base):
    """Stock per product: on hand, reserved for open orders, available to sell."""

    __tablename__ = "inventory_levels"

    sku: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(Integer)
    shipped: Mapped[int] = mapped_column(Integer)
    rejections: Mapped[int] = mapped_column(Integer)


class DailySales(Base):
    """Sales per business day (the day each fact happened, from the events' own times)."""

    __tablename__ = "daily_sales"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    orders_placed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    orders_cancelled: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    gross: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))
    refunded: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))


class ShipmentTracking(Base):
    """Where each parcel is."""

    __tablename__ = "shipment_tracking"

    shipment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    order_id: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    city: Mapped[str] = mapped_column(Text)
    carrier: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # created, dispatched, delivered
    tracking_number: Mapped[str | None] = mapped_column(Text)
    dispatched_at: Mapped[datetime | None] = mapped_column(Timestamp)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_shipment_tracking_status", "status", "carrier"),)


class PaymentLedgerEntry(Base):
    """Money movements: a capture is positive, a refund negative, a failure zero."""

    __tablename__ = "payments_ledger"

    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    payment_id: Mapped[str] = mapped_column(Text)
    order_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)  # capture, refund, failure
    amount: Mapped[Decimal] = mapped_column(Money)
    provider_ref: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_payments_ledger_payment", "payment_id"),)


class Notification(Base):
    """The notification outbox: one row per event that warrants a message, written once.

    A sender (``examples.shop.projections.send_notifications``) delivers rows
    whose ``sent_at`` is empty; applying an event again never resets them.
    """

    __tablename__ = "notification_outbox"

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    recipient: Mapped[str] = mapped_column(Text)
    template: Mapped[str] = mapped_column(Text)
    order_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(
            "ix_notification_outbox_unsent", "created_at", postgresql_where=text("sent_at IS NULL")
        ),
    )
