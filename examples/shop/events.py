"""Public: the shop's 23 event types, grouped by the aggregate whose stream holds them.

Stored names (``shop.<aggregate>.<fact>``) are stable; the classes may be
renamed freely. Business times (``placed_at``, ``captured_at`` ...) travel in
the events, so replaying the log gives the same read models every time::

    >>> OrderPaid.event_type, len(ALL_EVENTS)
    ('shop.order.paid', 23)
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from cqrs import Event, event


@attrs.frozen
class OrderLine:
    """One line of an order: a product, how many, at what unit price."""

    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


# -- customers (stream customer-<id>) ------------------------------------------


@event("shop.customer.registered")
class CustomerRegistered(Event):
    customer_id: str
    name: str
    email: str
    city: str


@event("shop.customer.address_changed")
class CustomerAddressChanged(Event):
    customer_id: str
    city: str


@event("shop.customer.deactivated")
class CustomerDeactivated(Event):
    customer_id: str
    reason: str


# -- orders (stream order-<id>) -------------------------------------------------


@event("shop.order.placed")
class OrderPlaced(Event):
    order_id: str
    customer_id: str
    lines: tuple[OrderLine, ...]
    total: Decimal
    placed_at: datetime


@event("shop.order.stock_reserved")
class OrderStockReserved(Event):
    order_id: str
    customer_id: str


@event("shop.order.paid")
class OrderPaid(Event):
    order_id: str
    customer_id: str
    payment_id: str
    amount: Decimal
    paid_at: datetime


@event("shop.order.ready_to_ship")
class OrderReadyToShip(Event):
    order_id: str
    customer_id: str


@event("shop.order.shipped")
class OrderShipped(Event):
    order_id: str
    customer_id: str
    shipment_id: str
    shipped_at: datetime


@event("shop.order.delivered")
class OrderDelivered(Event):
    order_id: str
    customer_id: str
    delivered_at: datetime


@event("shop.order.cancelled")
class OrderCancelled(Event):
    order_id: str
    customer_id: str
    reason: str
    cancelled_at: datetime


# -- payments (stream payment-<id>) ---------------------------------------------


@event("shop.payment.initiated")
class PaymentInitiated(Event):
    payment_id: str
    order_id: str
    customer_id: str
    amount: Decimal


@event("shop.payment.captured")
class PaymentCaptured(Event):
    payment_id: str
    order_id: str
    customer_id: str
    provider_ref: str
    amount: Decimal
    captured_at: datetime


@event("shop.payment.failed")
class PaymentFailed(Event):
    payment_id: str
    order_id: str
    customer_id: str
    provider_ref: str
    reason: str
    failed_at: datetime


@event("shop.payment.refunded")
class PaymentRefunded(Event):
    payment_id: str
    order_id: str
    customer_id: str
    amount: Decimal
    reason: str
    refunded_at: datetime


# -- inventory (stream inventory-<sku>) ------------------------------------------


@event("shop.inventory.item_added")
class InventoryItemAdded(Event):
    sku: str
    name: str
    unit_price: Decimal


@event("shop.inventory.stock_received")
class StockReceived(Event):
    sku: str
    quantity: int


@event("shop.inventory.stock_reserved")
class StockReserved(Event):
    sku: str
    order_id: str
    quantity: int


@event("shop.inventory.reservation_rejected")
class ReservationRejected(Event):
    sku: str
    order_id: str
    requested: int
    available: int
    at: datetime


@event("shop.inventory.stock_released")
class StockReleased(Event):
    sku: str
    order_id: str
    quantity: int


@event("shop.inventory.stock_shipped")
class StockShipped(Event):
    sku: str
    order_id: str
    quantity: int


# -- shipping (stream shipment-<id>) ---------------------------------------------


@event("shop.shipment.created")
class ShipmentCreated(Event):
    shipment_id: str
    order_id: str
    customer_id: str
    city: str
    carrier: str


@event("shop.shipment.dispatched")
class ShipmentDispatched(Event):
    shipment_id: str
    order_id: str
    tracking_number: str
    dispatched_at: datetime


@event("shop.shipment.delivered")
class ShipmentDelivered(Event):
    shipment_id: str
    order_id: str
    delivered_at: datetime


ALL_EVENTS: tuple[type[Event], ...] = (
    CustomerRegistered, CustomerAddressChanged, CustomerDeactivated,
    OrderPlaced, OrderStockReserved, OrderPaid, OrderReadyToShip, OrderShipped, OrderDelivered,
    OrderCancelled,
    PaymentInitiated, PaymentCaptured, PaymentFailed, PaymentRefunded,
    InventoryItemAdded, StockReceived, StockReserved, ReservationRejected, StockReleased,
    StockShipped,
    ShipmentCreated, ShipmentDispatched, ShipmentDelivered,
)  # fmt: skip
"""Every event type of the shop (23)."""
