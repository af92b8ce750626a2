"""The shop's process managers: given events in the log, when an event happens, then these
events were appended by the commands the manager dispatched, exactly once
(``cqrs.testing.ProcessScenario``, which also replays the when events and checks that
nothing more is appended)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from shop_scenarios import head, read_after, run_consumers
from sqlalchemy import Engine, text

from cqrs import START, ProcessManager
from cqrs.testing import ProcessScenario
from examples.shop.aggregates import NOW, Customer, InventoryItem, Order, Payment
from examples.shop.events import (
    CustomerRegistered,
    InventoryItemAdded,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderReadyToShip,
    OrderStockReserved,
    PaymentCaptured,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
    ReservationRejected,
    ShipmentCreated,
    StockReceived,
    StockReleased,
    StockReserved,
)
from examples.shop.handlers import build_bus, carrier_for
from examples.shop.projections import process_managers

LINES = (OrderLine("sku-1", 2, Decimal("5.00")), OrderLine("sku-2", 1, Decimal("2.50")))
TOTAL = Decimal("12.50")
PLACED = OrderPlaced("o-1", "c-1", LINES, TOTAL, NOW)
INITIATED = PaymentInitiated("pay-o-1", "o-1", "c-1", TOTAL)
CAPTURED = PaymentCaptured("pay-o-1", "o-1", "c-1", "psp-1", TOTAL, NOW + timedelta(minutes=3))
PAID = OrderPaid("o-1", "c-1", "pay-o-1", TOTAL, NOW + timedelta(minutes=3))
RESERVED = OrderStockReserved("o-1", "c-1")
READY = OrderReadyToShip("o-1", "c-1")


@pytest.fixture
def managers() -> dict[str, ProcessManager]:
    return {m.name: m for m in process_managers(build_bus())}


def stocked(scenario: ProcessScenario, sku_2_stock: int = 10) -> ProcessScenario:
    return (
        scenario.given(Customer, "c-1", CustomerRegistered("c-1", "Ada", "a@example.org", "Leeds"))
        .given(
            InventoryItem, "sku-1",
            InventoryItemAdded("sku-1", "lamp", Decimal("5.00")), StockReceived("sku-1", 10),
        )
        .given(
            InventoryItem, "sku-2",
            InventoryItemAdded("sku-2", "mug", Decimal("2.50")),
            StockReceived("sku-2", sku_2_stock),
        )
    )  # fmt: skip


def test_an_order_placed_gets_its_stock_reserved(
    cqrs_engine: Engine, managers: dict[str, ProcessManager]
) -> None:
    recorded = (
        stocked(ProcessScenario(managers["stock_process"], cqrs_engine))
        .given(Payment, "pay-o-1", INITIATED)
        .when(Order, "o-1", PLACED)
        .then(RESERVED, StockReserved("sku-1", "o-1", 2), StockReserved("sku-2", "o-1", 1))
    )
    # one command, caused by the OrderPlaced event: its id is derived from the event id
    placed = next(r for r in read_after(cqrs_engine, START) if isinstance(r.event, OrderPlaced))
    assert {r.metadata["command_id"] for r in recorded} == {f"stock_process:{placed.event_id}"}
    assert {r.correlation_id for r in recorded} == {str(placed.event_id)}


def test_a_product_short_rejects_the_whole_order_and_cancels_it(
    cqrs_engine: Engine, managers: dict[str, ProcessManager]
) -> None:
    """All or nothing: sku-1 is there, sku-2 is not; nothing is reserved, the order is cancelled."""
    (
        stocked(ProcessScenario(managers["stock_process"], cqrs_engine), sku_2_stock=0)
        .when(Order, "o-1", PLACED)
        .then(
            ReservationRejected("sku-2", "o-1", 1, 0, NOW),
            OrderCancelled("o-1", "c-1", "out of stock: sku-2", NOW),
        )
    )


def test_a_captured_payment_marks_the_order_paid_and_ready(
    cqrs_engine: Engine, managers: dict[str, ProcessManager]
) -> None:
    (
        ProcessScenario(managers["payment_process"], cqrs_engine)
        .given(Order, "o-1", PLACED, RESERVED)
        .given(Payment, "pay-o-1", INITIATED)
        .when(Payment, "pay-o-1", CAPTURED)
        .then(PAID, READY)
    )


def test_a_failed_payment_cancels_the_order(
    cqrs_engine: Engine, managers: dict[str, ProcessManager]
) -> None:
    failed_at = NOW + timedelta(minutes=2)
    (
        ProcessScenario(managers["payment_process"], cqrs_engine)
        .given(Order, "o-1", PLACED)
        .given(Payment, "pay-o-1", INITIATED)
        .when(
            Payment, "pay-o-1",
            PaymentFailed("pay-o-1", "o-1", "c-1", "psp-1", "card declined", failed_at),
        )
        .then(OrderCancelled("o-1", "c-1", "payment failed: card declined", failed_at))
    )  # fmt: skip


def test_money_arriving_for_a_cancelled_order_is_refunded(
    cqrs_engine: Engine, managers: dict[str, ProcessManager]
) -> None:
    (
        ProcessScenario(managers["payment_process"], cqrs_engine)
        .given(Order, "o-1", PLACED, OrderCancelled("o-1", "c-1", "out of stock: sku-2", NOW))
        .given(Payment, "pay-o-1", INITIATED)
        .when(Payment, "pay-o-1", CAPTURED)
        .then(
            PaymentRefunded(
                "pay-o-1", "o-1", "c-1", TOTAL, "order o-1 was cancelled", CAPTURED.captured_at
            )
        )
    )


def test_a_cancelled_order_releases_its_stock_and_refunds_its_payment(
    cqrs_engine: Engine, managers: dict[str, ProcessManager]
) -> None:
    later = NOW + timedelta(hours=1)
    (
        stocked(ProcessScenario(managers["compensation_process"], cqrs_engine))
        .given(InventoryItem, "sku-1", StockReserved("sku-1", "o-1", 2))
        .given(InventoryItem, "sku-2", StockReserved("sku-2", "o-1", 1))
        .given(Payment, "pay-o-1", INITIATED, CAPTURED)
        .given(Order, "o-1", PLACED, RESERVED, PAID)
        .when(Order, "o-1", OrderCancelled("o-1", "c-1", "fraud", later))
        .then(
            StockReleased("sku-1", "o-1", 2),
            StockReleased("sku-2", "o-1", 1),
            PaymentRefunded("pay-o-1", "o-1", "c-1", TOTAL, "order cancelled", later),
        )
    )


def test_an_order_ready_to_ship_gets_a_shipment(
    cqrs_engine: Engine, managers: dict[str, ProcessManager]
) -> None:
    (
        ProcessScenario(managers["fulfilment_process"], cqrs_engine)
        .given(Customer, "c-1", CustomerRegistered("c-1", "Ada", "a@example.org", "Leeds"))
        .given(Order, "o-1", PLACED, RESERVED, PAID)
        .when(Order, "o-1", READY)
        .then(ShipmentCreated("shp-o-1", "o-1", "c-1", "Leeds", carrier_for("Leeds")))
    )


def test_replaying_a_process_manager_dispatches_nothing_twice(
    cqrs_engine: Engine, managers: dict[str, ProcessManager]
) -> None:
    """Command ids come from event ids: after a checkpoint reset the runner's commands are
    repeats."""
    stock = managers["stock_process"]
    stocked(ProcessScenario(stock, cqrs_engine)).when(Order, "o-1", PLACED).then(
        RESERVED, StockReserved("sku-1", "o-1", 2), StockReserved("sku-2", "o-1", 1)
    )
    before = head(cqrs_engine)
    with cqrs_engine.begin() as conn:
        conn.execute(text("DELETE FROM checkpoints WHERE projection = 'stock_process'"))
    assert run_consumers(cqrs_engine, stock) > 0
    assert read_after(cqrs_engine, before) == []
