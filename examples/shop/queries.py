"""Public: the shop's query side: typed queries answered from the read models.

``build_query_bus(engine)`` answers every query below in a read-only session
(point it at a replica if you have one)::

    queries = build_query_bus(engine)
    [o.status for o in queries.ask(OrdersOfCustomer("c-1"))]   # ['delivered', 'cancelled']
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cqrs.queries import Query, QueryBus
from examples.shop import models as m

Q = TypeVar("Q", bound=Query[Any])

# -- answers -------------------------------------------------------------------------


@attrs.frozen
class OrderView:
    order_id: str
    customer_id: str
    status: str
    total: Decimal
    items: int
    placed_at: datetime
    payment_status: str
    stock_status: str
    cancel_reason: str | None


@attrs.frozen
class StockView:
    sku: str
    name: str
    on_hand: int
    reserved: int
    available: int
    shipped: int


@attrs.frozen
class DayView:
    day: date
    orders_placed: int
    orders_cancelled: int
    gross: Decimal
    refunded: Decimal

    @property
    def net(self) -> Decimal:
        return self.gross - self.refunded


@attrs.frozen
class HistoryView:
    at: datetime
    kind: str
    order_id: str | None
    amount: Decimal | None
    detail: str | None


@attrs.frozen
class CustomerView:
    customer_id: str
    name: str
    city: str
    orders_placed: int
    orders_delivered: int
    total_spent: Decimal


@attrs.frozen
class LedgerTotals:
    captured: Decimal
    refunded: Decimal
    failures: int

    @property
    def net(self) -> Decimal:
        return self.captured - self.refunded


# -- queries -------------------------------------------------------------------------


@attrs.frozen
class OrdersOfCustomer(Query[list[OrderView]]):
    """A customer's orders, newest first."""

    customer_id: str
    limit: int = 20


@attrs.frozen
class OrderStatus(Query[OrderView | None]):
    order_id: str


@attrs.frozen
class InventoryLevel(Query[StockView | None]):
    sku: str


@attrs.frozen
class LowStock(Query[list[StockView]]):
    """Products with at most ``threshold`` available, fewest first."""

    threshold: int = 10


@attrs.frozen
class DailySales(Query[list[DayView]]):
    """Sales per day, the most recent ``days`` days that had any."""

    days: int = 7


@attrs.frozen
class CustomerHistory(Query[list[HistoryView]]):
    customer_id: str


@attrs.frozen
class TopCustomers(Query[list[CustomerView]]):
    limit: int = 3


@attrs.frozen
class ShipmentsByStatus(Query[list[str]]):
    """Shipment ids in ``status`` (created, dispatched, delivered), oldest order first."""

    status: str
    limit: int = 1000


@attrs.frozen
class ShipmentCounts(Query[dict[str, int]]):
    """How many shipments are in each status."""


@attrs.frozen
class OrderCounts(Query[dict[str, int]]):
    """How many orders are in each status."""


@attrs.frozen
class PaymentsBalance(Query[LedgerTotals]):
    """Money captured and refunded, from the payments ledger."""


# -- handlers ---------------------------------------------------------------------------


def _order(row: m.OrderSummary) -> OrderView:
    return OrderView(
        row.order_id, row.customer_id, row.status, row.total, row.items, row.placed_at,
        row.payment_status, row.stock_status, row.cancel_reason,
    )  # fmt: skip


def _stock(row: m.InventoryLevel) -> StockView:
    return StockView(row.sku, row.name, row.on_hand, row.reserved, row.available, row.shipped)


def orders_of_customer(q: OrdersOfCustomer, session: Session) -> list[OrderView]:
    rows = session.scalars(
        select(m.OrderSummary)
        .where(m.OrderSummary.customer_id == q.customer_id)
        .order_by(m.OrderSummary.placed_at.desc(), m.OrderSummary.order_id)
        .limit(q.limit)
    )
    return [_order(r) for r in rows]


def order_status(q: OrderStatus, session: Session) -> OrderView | None:
    row = session.get(m.OrderSummary, q.order_id)
    return None if row is None else _order(row)


def inventory_level(q: InventoryLevel, session: Session) -> StockView | None:
    row = session.get(m.InventoryLevel, q.sku)
    return None if row is None else _stock(row)


def low_stock(q: LowStock, session: Session) -> list[StockView]:
    rows = session.scalars(
        select(m.InventoryLevel)
        .where(m.InventoryLevel.available <= q.threshold)
        .order_by(m.InventoryLevel.available, m.InventoryLevel.sku)
    )
    return [_stock(r) for r in rows]


def daily_sales(q: DailySales, session: Session) -> list[DayView]:
    rows = session.scalars(select(m.DailySales).order_by(m.DailySales.day.desc()).limit(q.days))
    found = [DayView(r.day, r.orders_placed, r.orders_cancelled, r.gross, r.refunded) for r in rows]
    return sorted(found, key=lambda d: d.day)


def customer_history(q: CustomerHistory, session: Session) -> list[HistoryView]:
    rows = session.scalars(
        select(m.CustomerHistoryEntry)
        .where(m.CustomerHistoryEntry.customer_id == q.customer_id)
        .order_by(m.CustomerHistoryEntry.at, m.CustomerHistoryEntry.event_id)
    )
    return [HistoryView(r.at, r.kind, r.order_id, r.amount, r.detail) for r in rows]


def top_customers(q: TopCustomers, session: Session) -> list[CustomerView]:
    rows = session.scalars(
        select(m.CustomerProfile)
        .order_by(m.CustomerProfile.total_spent.desc(), m.CustomerProfile.customer_id)
        .limit(q.limit)
    )
    return [
        CustomerView(r.customer_id, r.name, r.city, r.orders_placed, r.orders_delivered,
                     r.total_spent)
        for r in rows
    ]  # fmt: skip


def shipments_by_status(q: ShipmentsByStatus, session: Session) -> list[str]:
    return list(
        session.scalars(
            select(m.ShipmentTracking.shipment_id)
            .where(m.ShipmentTracking.status == q.status)
            .order_by(m.ShipmentTracking.order_id)
            .limit(q.limit)
        )
    )


def _counts(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column).order_by(column))
    return {str(status): int(n) for status, n in rows}


def shipment_counts(q: ShipmentCounts, session: Session) -> dict[str, int]:
    return _counts(session, m.ShipmentTracking.status)


def order_counts(q: OrderCounts, session: Session) -> dict[str, int]:
    return _counts(session, m.OrderSummary.status)


def payments_balance(q: PaymentsBalance, session: Session) -> LedgerTotals:
    ledger = m.PaymentLedgerEntry
    captured, refunded, failures = session.execute(
        select(
            func.coalesce(func.sum(ledger.amount).filter(ledger.kind == "capture"), 0),
            func.coalesce(-func.sum(ledger.amount).filter(ledger.kind == "refund"), 0),
            func.count().filter(ledger.kind == "failure"),
        )
    ).one()
    return LedgerTotals(Decimal(captured), Decimal(refunded), int(failures))


HANDLERS: dict[type[Query[Any]], Callable[[Any, Session], Any]] = {
    OrdersOfCustomer: orders_of_customer,
    OrderStatus: order_status,
    InventoryLevel: inventory_level,
    LowStock: low_stock,
    DailySales: daily_sales,
    CustomerHistory: customer_history,
    TopCustomers: top_customers,
    ShipmentsByStatus: shipments_by_status,
    ShipmentCounts: shipment_counts,
    OrderCounts: order_counts,
    PaymentsBalance: payments_balance,
}


def build_query_bus(engine: Engine) -> QueryBus:
    """A ``QueryBus`` on ``engine`` answering every shop query."""
    bus = QueryBus(engine)
    for query_type, handler in HANDLERS.items():
        bus.handles(query_type)(handler)
    return bus
