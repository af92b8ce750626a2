"""Public: the shop's command handlers and ``build_bus()``, the ``CommandBus`` that runs them.

Each handler loads aggregates through the unit of work, calls their command
methods and returns a small result; the bus appends every touched
aggregate's events in one transaction (or none, when a rule is broken)::

    bus = build_bus()
    with Session(engine) as session:
        bus.dispatch(RegisterCustomer("c-1", "Ada", "ada@example.org", "Leeds"), session)
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

from cqrs import CommandBus, UnitOfWork
from cqrs.commands import Middleware
from cqrs.commands.inline import InlineProjection
from examples.shop.aggregates import Customer, InventoryItem, Order, Payment, Shipment
from examples.shop.commands import (
    AddProduct,
    CancelOrder,
    ChangeCustomerAddress,
    CompensateCancelledOrder,
    CreateShipment,
    DeactivateCustomer,
    DeliverShipment,
    DispatchShipment,
    HandlePaymentCallback,
    MarkOrderPaid,
    PlaceOrder,
    ReceiveStock,
    RefundPayment,
    RegisterCustomer,
    ReserveStockForOrder,
    ShipOrderStock,
)
from examples.shop.errors import InvalidOrder

CARRIERS = ("DHL", "UPS", "DPD", "GLS")


def carrier_for(city: str) -> str:
    """The carrier serving ``city`` (stable across runs)."""
    return CARRIERS[zlib.crc32(city.encode()) % len(CARRIERS)]


# -- customers ------------------------------------------------------------------------


def register_customer(cmd: RegisterCustomer, uow: UnitOfWork) -> str:
    uow.repository(Customer).create(cmd.customer_id).register(cmd.name, cmd.email, cmd.city)
    return cmd.customer_id


def change_customer_address(cmd: ChangeCustomerAddress, uow: UnitOfWork) -> None:
    uow.repository(Customer).get(cmd.customer_id).change_address(cmd.city)


def deactivate_customer(cmd: DeactivateCustomer, uow: UnitOfWork) -> None:
    uow.repository(Customer).get(cmd.customer_id).deactivate(cmd.reason)


# -- inventory --------------------------------------------------------------------------


def add_product(cmd: AddProduct, uow: UnitOfWork) -> str:
    item = uow.repository(InventoryItem).create(cmd.sku)
    item.add(cmd.name, cmd.unit_price)
    if cmd.initial_stock:
        item.receive(cmd.initial_stock)
    return cmd.sku


def receive_stock(cmd: ReceiveStock, uow: UnitOfWork) -> int:
    item = uow.repository(InventoryItem).get(cmd.sku)
    item.receive(cmd.quantity)
    return item.available


def reserve_stock_for_order(cmd: ReserveStockForOrder, uow: UnitOfWork) -> str:
    """All lines or none: ``"reserved"``, ``"rejected"`` (some product short) or ``"skipped"``
    (the order is no longer open or already reserved)."""
    order = uow.repository(Order).get(cmd.order_id)
    if order.status != "placed" or order.stock_reserved:
        return "skipped"
    items = uow.repository(InventoryItem)
    wanted = [(items.get(line.sku), line.quantity) for line in order.lines]
    short = [(item, qty) for item, qty in wanted if qty > item.available]
    if short:
        assert order.placed_at is not None
        for item, qty in short:
            item.reject(order.id, qty, order.placed_at)
        return "rejected"
    for item, qty in wanted:
        item.reserve(order.id, qty)
    order.mark_stock_reserved()
    return "reserved"


def ship_order_stock(cmd: ShipOrderStock, uow: UnitOfWork) -> None:
    order = uow.repository(Order).get(cmd.order_id)
    items = uow.repository(InventoryItem)
    for line in order.lines:
        items.get(line.sku).ship(order.id)


# -- orders --------------------------------------------------------------------------------


def place_order(cmd: PlaceOrder, uow: UnitOfWork) -> str:
    """Place the order and open its payment, in one transaction."""
    customer = uow.repository(Customer).get_or_none(cmd.customer_id)
    if customer is None:
        raise InvalidOrder(f"customer {cmd.customer_id} does not exist; register it first")
    customer.check_can_order()
    order = uow.repository(Order).create(cmd.order_id)
    order.place(cmd.customer_id, cmd.lines, cmd.placed_at)
    payment = uow.repository(Payment).create(cmd.payment_id)
    payment.initiate(order.id, cmd.customer_id, order.total)
    return order.id


def mark_order_paid(cmd: MarkOrderPaid, uow: UnitOfWork) -> str:
    """``"paid"``; or ``"refunded"`` when the order was cancelled before the money came."""
    order = uow.repository(Order).get(cmd.order_id)
    if order.status == "cancelled":
        payment = uow.repository(Payment).get(cmd.payment_id)
        payment.refund(f"order {order.id} was cancelled", cmd.paid_at)
        return "refunded"
    order.mark_paid(cmd.payment_id, cmd.amount, cmd.paid_at)
    return "paid"


def cancel_order(cmd: CancelOrder, uow: UnitOfWork) -> None:
    uow.repository(Order).get(cmd.order_id).cancel(cmd.reason, cmd.at)


def compensate_cancelled_order(cmd: CompensateCancelledOrder, uow: UnitOfWork) -> list[str]:
    """Undo what a cancelled order holds: its stock reservations and its captured payment."""
    order = uow.repository(Order).get(cmd.order_id)
    done: list[str] = []
    if order.stock_reserved:
        items = uow.repository(InventoryItem)
        for line in order.lines:
            items.get(line.sku).release(order.id)
        done.append("released")
    if order.paid and order.payment_id is not None:
        uow.repository(Payment).get(order.payment_id).refund("order cancelled", cmd.at)
        done.append("refunded")
    return done


# -- payments ----------------------------------------------------------------------------------


def handle_payment_callback(cmd: HandlePaymentCallback, uow: UnitOfWork) -> bool:
    """``True`` when the callback changed the payment, ``False`` for a repeat."""
    payment = uow.repository(Payment).get(cmd.payment_id)
    return payment.callback(cmd.provider_ref, cmd.succeeded, cmd.amount, cmd.at, cmd.reason)


def refund_payment(cmd: RefundPayment, uow: UnitOfWork) -> None:
    uow.repository(Payment).get(cmd.payment_id).refund(cmd.reason, cmd.at)


# -- shipping -------------------------------------------------------------------------------------


def create_shipment(cmd: CreateShipment, uow: UnitOfWork) -> str:
    """Open the order's shipment; refuses an unpaid order (``OrderNotPaid``)."""
    order = uow.repository(Order).get(cmd.order_id)
    order.check_shippable()
    shipments = uow.repository(Shipment)
    existing = shipments.get_or_none(cmd.shipment_id)
    if existing is not None:
        return existing.id
    city = uow.repository(Customer).get(order.customer_id).city
    shipments.create(cmd.shipment_id).create(order.id, order.customer_id, city, carrier_for(city))
    return cmd.shipment_id


def dispatch_shipment(cmd: DispatchShipment, uow: UnitOfWork) -> None:
    """Hand the parcel to the carrier: the order is shipped (never an unpaid one)."""
    shipment = uow.repository(Shipment).get(cmd.shipment_id)
    order = uow.repository(Order).get(shipment.order_id)
    order.ship(shipment.id, cmd.at)
    shipment.dispatch(cmd.tracking_number, cmd.at)


def deliver_shipment(cmd: DeliverShipment, uow: UnitOfWork) -> None:
    shipment = uow.repository(Shipment).get(cmd.shipment_id)
    shipment.deliver(cmd.at)
    uow.repository(Order).get(shipment.order_id).deliver(cmd.at)


HANDLERS: dict[type, Callable[[Any, UnitOfWork], Any]] = {
    RegisterCustomer: register_customer,
    ChangeCustomerAddress: change_customer_address,
    DeactivateCustomer: deactivate_customer,
    AddProduct: add_product,
    ReceiveStock: receive_stock,
    ReserveStockForOrder: reserve_stock_for_order,
    ShipOrderStock: ship_order_stock,
    PlaceOrder: place_order,
    MarkOrderPaid: mark_order_paid,
    CancelOrder: cancel_order,
    CompensateCancelledOrder: compensate_cancelled_order,
    HandlePaymentCallback: handle_payment_callback,
    RefundPayment: refund_payment,
    CreateShipment: create_shipment,
    DispatchShipment: dispatch_shipment,
    DeliverShipment: deliver_shipment,
}
"""Every command type of the shop and its handler."""


def build_bus(
    *,
    middleware: Sequence[Middleware] | None = None,
    inline_projections: Sequence[InlineProjection] = (),
) -> CommandBus:
    """A ``CommandBus`` with every shop handler registered."""
    bus = CommandBus(middleware=middleware, inline_projections=inline_projections)
    for command_type, handler in HANDLERS.items():
        bus.register(command_type, handler)
    return bus
