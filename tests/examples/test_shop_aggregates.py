"""The shop's business rules, in memory, with given / when / then (``AggregateScenario``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cqrs.testing import AggregateScenario
from examples.shop.aggregates import NOW, Customer, InventoryItem, Order, Payment, Shipment
from examples.shop.errors import (
    CustomerRejected,
    InsufficientStock,
    InvalidOrder,
    InventoryRejected,
    OrderClosed,
    OrderNotPaid,
    PaymentRejected,
    ShipmentRejected,
)
from examples.shop.events import (
    ALL_EVENTS,
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
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
    ReservationRejected,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDispatched,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
)

LINES = (OrderLine("sku-1", 2, Decimal("5.00")), OrderLine("sku-2", 1, Decimal("2.50")))
PLACED = OrderPlaced("o-1", "c-1", LINES, Decimal("12.50"), NOW)
PAID = OrderPaid("o-1", "c-1", "pay-o-1", Decimal("12.50"), NOW)
RESERVED = OrderStockReserved("o-1", "c-1")
LATER = NOW + timedelta(hours=1)


def order() -> AggregateScenario[Order]:
    return AggregateScenario(Order, "o-1")


def test_the_shop_has_23_event_types_across_5_aggregates() -> None:
    assert len(ALL_EVENTS) == len({e.event_type for e in ALL_EVENTS}) == 23
    kinds = {e.event_type.split(".")[1] for e in ALL_EVENTS}
    assert kinds == {"customer", "order", "payment", "inventory", "shipment"}


# -- orders ------------------------------------------------------------------------------


def test_placing_an_order_totals_its_lines() -> None:
    order().when(lambda o: o.place("c-1", LINES, NOW)).then(PLACED)


@pytest.mark.parametrize(
    "lines",
    [(), (OrderLine("sku-1", 0, Decimal(1)),), (LINES[0], LINES[0])],
    ids=["no lines", "zero quantity", "same product twice"],
)
def test_an_order_needs_sensible_lines(lines: tuple[OrderLine, ...]) -> None:
    order().when(lambda o: o.place("c-1", lines, NOW)).then_raises(InvalidOrder)


def test_an_order_is_placed_once() -> None:
    order().given(PLACED).when(lambda o: o.place("c-1", LINES, NOW)).then_raises(
        InvalidOrder, "already placed"
    )


def test_no_shipping_an_unpaid_order() -> None:
    order().given(PLACED, RESERVED).when(lambda o: o.ship("shp-o-1", LATER)).then_raises(
        OrderNotPaid, "not paid"
    )


def test_no_shipping_without_reserved_stock() -> None:
    order().given(PLACED, PAID).when(lambda o: o.ship("shp-o-1", LATER)).then_raises(
        OrderClosed, "no stock reserved"
    )


def test_paid_and_reserved_makes_the_order_ready_in_either_order() -> None:
    ready = OrderReadyToShip("o-1", "c-1")
    order().given(PLACED, RESERVED).when(
        lambda o: o.mark_paid("pay-o-1", Decimal("12.50"), NOW)
    ).then(PAID, ready)
    order().given(PLACED, PAID).when(lambda o: o.mark_stock_reserved()).then(RESERVED, ready)


def test_marking_paid_twice_changes_nothing_and_a_wrong_amount_is_refused() -> None:
    order().given(PLACED, PAID).when(lambda o: o.mark_paid("pay-o-1", Decimal("12.50"), NOW)).then()
    order().given(PLACED).when(lambda o: o.mark_paid("pay-o-1", Decimal("1"), NOW)).then_raises(
        InvalidOrder, "totals 12.50"
    )


def test_a_shipped_order_cannot_be_cancelled_and_cancelling_twice_is_a_no_op() -> None:
    shipped = OrderShipped("o-1", "c-1", "shp-o-1", LATER)
    order().given(PLACED, PAID, RESERVED, OrderReadyToShip("o-1", "c-1"), shipped).when(
        lambda o: o.cancel("changed my mind", LATER)
    ).then_raises(OrderClosed)
    cancelled = OrderCancelled("o-1", "c-1", "payment failed", LATER)
    order().given(PLACED, cancelled).when(lambda o: o.cancel("again", LATER)).then()
    order().given(PLACED, cancelled).when(
        lambda o: o.mark_paid("pay-o-1", Decimal("12.50"), NOW)
    ).then_raises(OrderClosed, "cancelled")


# -- payments ------------------------------------------------------------------------------

INITIATED = PaymentInitiated("pay-o-1", "o-1", "c-1", Decimal("12.50"))
CAPTURED = PaymentCaptured("pay-o-1", "o-1", "c-1", "psp-1", Decimal("12.50"), NOW)


def payment() -> AggregateScenario[Payment]:
    return AggregateScenario(Payment, "pay-o-1")


def test_a_payment_callback_captures_the_payment() -> None:
    payment().given(INITIATED).when(
        lambda p: p.callback("psp-1", True, Decimal("12.50"), NOW)
    ).then(CAPTURED)


def test_a_repeated_payment_callback_changes_nothing() -> None:
    """Idempotent callbacks: the provider reference was seen, so nothing is recorded."""
    seen = (
        payment()
        .given(INITIATED, CAPTURED)
        .when(lambda p: p.callback("psp-1", True, Decimal("12.50"), NOW))
    )
    p = seen.then()
    assert p.status == "captured"
    failed = PaymentFailed("pay-o-1", "o-1", "c-1", "psp-9", "card declined", NOW)
    payment().given(INITIATED, failed).when(
        lambda p: p.callback("psp-9", False, Decimal("12.50"), NOW, "card declined")
    ).then()


def test_a_settled_payment_cannot_be_settled_again_by_another_reference() -> None:
    payment().given(INITIATED, CAPTURED).when(
        lambda p: p.callback("psp-2", False, Decimal("12.50"), NOW, "late failure")
    ).then_raises(PaymentRejected, "already captured")


def test_a_capture_for_another_amount_is_refused() -> None:
    payment().given(INITIATED).when(
        lambda p: p.callback("psp-1", True, Decimal("99"), NOW)
    ).then_raises(PaymentRejected, "captured 99")


def test_only_a_captured_payment_is_refunded_and_only_once() -> None:
    refunded = PaymentRefunded("pay-o-1", "o-1", "c-1", Decimal("12.50"), "cancelled", LATER)
    payment().given(INITIATED, CAPTURED).when(lambda p: p.refund("cancelled", LATER)).then(refunded)
    payment().given(INITIATED, CAPTURED, refunded).when(lambda p: p.refund("again", LATER)).then()
    payment().given(INITIATED).when(lambda p: p.refund("x", LATER)).then_raises(
        PaymentRejected, "pending"
    )


# -- inventory -------------------------------------------------------------------------------

ADDED = InventoryItemAdded("sku-1", "lamp", Decimal("5.00"))


def item() -> AggregateScenario[InventoryItem]:
    return AggregateScenario(InventoryItem, "sku-1")


def test_no_reservation_beyond_the_available_stock() -> None:
    err = (
        item()
        .given(ADDED, StockReceived("sku-1", 3), StockReserved("sku-1", "o-1", 2))
        .when(lambda i: i.reserve("o-2", 2))
        .then_raises(InsufficientStock)
    )
    assert (err.requested, err.available) == (2, 1)


def test_reserving_exactly_what_is_left_works_and_twice_for_one_order_is_a_no_op() -> None:
    item().given(ADDED, StockReceived("sku-1", 3)).when(lambda i: i.reserve("o-1", 3)).then(
        StockReserved("sku-1", "o-1", 3)
    )
    item().given(ADDED, StockReceived("sku-1", 3), StockReserved("sku-1", "o-1", 3)).when(
        lambda i: i.reserve("o-1", 3)
    ).then()


def test_release_and_ship_settle_a_reservation() -> None:
    history = (ADDED, StockReceived("sku-1", 5), StockReserved("sku-1", "o-1", 2))
    released = (
        item()
        .given(*history)
        .when(lambda i: i.release("o-1"))
        .then(StockReleased("sku-1", "o-1", 2))
    )
    assert released.available == 5
    shipped = (
        item().given(*history).when(lambda i: i.ship("o-1")).then(StockShipped("sku-1", "o-1", 2))
    )
    assert (shipped.on_hand, shipped.available) == (3, 3)
    item().given(*history).when(lambda i: i.ship("o-9")).then_raises(InventoryRejected)


def test_a_rejection_records_what_was_available() -> None:
    item().given(ADDED, StockReceived("sku-1", 1)).when(lambda i: i.reject("o-1", 4, NOW)).then(
        ReservationRejected("sku-1", "o-1", 4, 1, NOW)
    )


def test_unknown_products_and_bad_quantities_are_refused() -> None:
    item().when(lambda i: i.receive(3)).then_raises(InventoryRejected, "unknown")
    item().given(ADDED).when(lambda i: i.receive(0)).then_raises(InventoryRejected, ">= 1")


OPS = st.lists(
    st.tuples(
        st.sampled_from(["receive", "reserve", "release", "ship"]),
        st.integers(0, 5),
        st.integers(1, 6),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_stock_never_goes_negative(ops: list[tuple[str, int, int]]) -> None:
    """Whatever sequence of commands arrives, on hand and available stay >= 0."""
    stock = InventoryItem.from_events("sku-1", [ADDED])
    for op, order_no, quantity in ops:
        order_id = f"o-{order_no}"
        try:
            if op == "receive":
                stock.receive(quantity)
            elif op == "reserve":
                stock.reserve(order_id, quantity)
            elif op == "release":
                stock.release(order_id)
            else:
                stock.ship(order_id)
        except (InsufficientStock, InventoryRejected):
            pass
        assert stock.on_hand >= 0 and stock.available >= 0
    rebuilt = InventoryItem.from_events("sku-1", [ADDED, *stock.pending_events])
    assert (rebuilt.on_hand, rebuilt.available) == (stock.on_hand, stock.available)


# -- customers and shipments ----------------------------------------------------------------

REGISTERED = CustomerRegistered("c-1", "Ada", "ada@example.org", "Leeds")


def test_customers_register_once_and_deactivated_ones_cannot_order() -> None:
    customers = AggregateScenario(Customer, "c-1")
    customers.when(lambda c: c.register("Ada", "ada@example.org", "Leeds")).then(REGISTERED)
    AggregateScenario(Customer, "c-1").given(REGISTERED).when(
        lambda c: c.register("Ada", "ada@example.org", "Leeds")
    ).then_raises(CustomerRejected, "already registered")
    AggregateScenario(Customer, "c-1").when(
        lambda c: c.register("Ada", "no-at-sign", "Leeds")
    ).then_raises(CustomerRejected, "@")
    AggregateScenario(Customer, "c-1").given(REGISTERED, CustomerDeactivated("c-1", "closed")).when(
        lambda c: c.check_can_order()
    ).then_raises(CustomerRejected, "deactivated")


def test_a_shipment_is_dispatched_before_it_is_delivered() -> None:
    created = ShipmentCreated("shp-o-1", "o-1", "c-1", "Leeds", "DHL")
    AggregateScenario(Shipment, "shp-o-1").given(created).when(
        lambda s: s.deliver(LATER)
    ).then_raises(ShipmentRejected, "dispatch it first")
    dispatched = ShipmentDispatched("shp-o-1", "o-1", "TRK1", NOW)
    AggregateScenario(Shipment, "shp-o-1").given(created, dispatched).when(
        lambda s: s.deliver(LATER)
    ).then(ShipmentDelivered("shp-o-1", "o-1", LATER))
    AggregateScenario(Shipment, "shp-o-1").given(created, dispatched).when(
        lambda s: s.dispatch("TRK1", NOW)
    ).then()
