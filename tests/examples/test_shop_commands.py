"""The shop's command handlers through the bus, against a real database (``CommandScenario``),
and the notification outbox's once-per-event guarantee."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from shop_scenarios import read_after
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from cqrs import START, EventStore
from cqrs.testing import CommandScenario
from examples.shop.aggregates import NOW, Customer, InventoryItem, Order, Payment, Shipment
from examples.shop.commands import (
    CreateShipment,
    DispatchShipment,
    HandlePaymentCallback,
    PlaceOrder,
    RegisterCustomer,
    ReserveStockForOrder,
)
from examples.shop.errors import CustomerRejected, InvalidOrder, OrderNotPaid
from examples.shop.events import (
    CustomerDeactivated,
    CustomerRegistered,
    InventoryItemAdded,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderReadyToShip,
    OrderShipped,
    OrderStockReserved,
    PaymentCaptured,
    PaymentInitiated,
    ReservationRejected,
    ShipmentCreated,
    ShipmentDispatched,
    StockReceived,
)
from examples.shop.handlers import build_bus
from examples.shop.models import Notification
from examples.shop.projections import notifications, send_notifications

LINES = (OrderLine("sku-1", 2, Decimal("5.00")), OrderLine("sku-2", 1, Decimal("2.50")))
TOTAL = Decimal("12.50")
REGISTERED = CustomerRegistered("c-1", "Ada", "a@example.org", "Leeds")
PLACED = OrderPlaced("o-1", "c-1", LINES, TOTAL, NOW)
INITIATED = PaymentInitiated("pay-o-1", "o-1", "c-1", TOTAL)
CAPTURED = PaymentCaptured("pay-o-1", "o-1", "c-1", "psp-1", TOTAL, NOW)


def scenario(engine: Engine) -> CommandScenario:
    return CommandScenario(build_bus(), engine)


def test_placing_an_order_opens_its_payment_in_the_same_transaction(cqrs_engine: Engine) -> None:
    scenario(cqrs_engine).given(Customer, "c-1", REGISTERED).when(
        PlaceOrder("o-1", "c-1", LINES, NOW)
    ).then(PLACED, INITIATED)


def test_a_deactivated_or_unknown_customer_cannot_order_and_nothing_is_written(
    cqrs_engine: Engine,
) -> None:
    scenario(cqrs_engine).given(
        Customer, "c-1", REGISTERED, CustomerDeactivated("c-1", "closed")
    ).when(PlaceOrder("o-1", "c-1", LINES, NOW)).then_raises(CustomerRejected, "deactivated")
    scenario(cqrs_engine).when(PlaceOrder("o-2", "c-404", LINES, NOW)).then_raises(
        InvalidOrder, "does not exist"
    )
    with Session(cqrs_engine) as session:
        assert EventStore().stream_info(session, "order-o-1") is None
        assert EventStore().stream_info(session, "payment-pay-o-1") is None


def test_a_repeated_payment_callback_appends_nothing(cqrs_engine: Engine) -> None:
    callback = HandlePaymentCallback("pay-o-1", "psp-1", True, TOTAL, NOW)
    outcome = (
        scenario(cqrs_engine).given(Payment, "pay-o-1", INITIATED, CAPTURED).when(callback).then()
    )
    assert outcome.result is False


def test_stock_is_reserved_all_or_nothing(cqrs_engine: Engine) -> None:
    outcome = (
        scenario(cqrs_engine)
        .given(Order, "o-1", PLACED)
        .given(
            InventoryItem, "sku-1",
            InventoryItemAdded("sku-1", "lamp", Decimal(5)), StockReceived("sku-1", 10),
        )
        .given(InventoryItem, "sku-2", InventoryItemAdded("sku-2", "mug", Decimal("2.5")))
        .when(ReserveStockForOrder("o-1"))
        .then(ReservationRejected("sku-2", "o-1", 1, 0, NOW))
    )  # fmt: skip
    assert outcome.result == "rejected"


def test_no_shipment_for_an_unpaid_order(cqrs_engine: Engine) -> None:
    scenario(cqrs_engine).given(Order, "o-1", PLACED, OrderStockReserved("o-1", "c-1")).when(
        CreateShipment("o-1")
    ).then_raises(OrderNotPaid)


def test_dispatching_ships_the_order(cqrs_engine: Engine) -> None:
    paid = OrderPaid("o-1", "c-1", "pay-o-1", TOTAL, NOW)
    at = NOW + timedelta(days=1)
    scenario(cqrs_engine).given(
        Order,
        "o-1",
        PLACED,
        OrderStockReserved("o-1", "c-1"),
        paid,
        OrderReadyToShip("o-1", "c-1"),
    ).given(Shipment, "shp-o-1", ShipmentCreated("shp-o-1", "o-1", "c-1", "Leeds", "DHL")).when(
        DispatchShipment("shp-o-1", "TRK1", at)
    ).then(
        ShipmentDispatched("shp-o-1", "o-1", "TRK1", at), OrderShipped("o-1", "c-1", "shp-o-1", at)
    )


def test_dispatching_a_cancelled_order_is_refused(cqrs_engine: Engine) -> None:
    scenario(cqrs_engine).given(
        Order, "o-1", PLACED, OrderCancelled("o-1", "c-1", "payment failed", NOW)
    ).given(Shipment, "shp-o-1", ShipmentCreated("shp-o-1", "o-1", "c-1", "Leeds", "DHL")).when(
        DispatchShipment("shp-o-1", "TRK1", NOW)
    ).then_raises(OrderNotPaid)


def test_the_outbox_writes_one_row_per_event_and_never_rewrites_a_sent_one(
    shop_engine: Engine,
) -> None:
    with Session(shop_engine) as session:
        bus = build_bus()
        bus.dispatch(RegisterCustomer("c-1", "Ada", "a@example.org", "Leeds"), session)
        bus.dispatch(PlaceOrder("o-1", "c-1", (LINES[0],), NOW), session)
    events = read_after(shop_engine, START)
    with shop_engine.begin() as conn:
        notifications.apply(conn, events)
    sent: list[tuple[str, str, str | None]] = []
    assert send_notifications(shop_engine, lambda *row: sent.append(row)) == 1
    assert sent == [("c-1", "order_received", "o-1")]
    with shop_engine.begin() as conn:  # the same events again: a redelivery, a replay
        notifications.apply(conn, events)
        notifications.apply(conn, events)
    with Session(shop_engine) as session:
        rows = session.scalars(select(Notification)).all()
        assert [(r.template, r.sent_at is not None) for r in rows] == [("order_received", True)]
    assert send_notifications(shop_engine, lambda *row: sent.append(row)) == 0
    with shop_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notification_outbox")).scalar() == 1
