"""Public: the shop's commands, plain frozen attrs classes (what a caller asks for).

Times come from the caller (a web request, a provider callback, the event a
process manager reacts to), never from the clock inside a handler, so a
replayed history is the same history::

    >>> from decimal import Decimal
    >>> from examples.shop.aggregates import NOW
    >>> cmd = PlaceOrder("o-1", "c-1", (OrderLine("sku-1", 2, Decimal("4.50")),), NOW)
    >>> cmd.payment_id
    'pay-o-1'
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from examples.shop.events import OrderLine

__all__ = [
    "AddProduct",
    "CancelOrder",
    "ChangeCustomerAddress",
    "CompensateCancelledOrder",
    "CreateShipment",
    "DeactivateCustomer",
    "DeliverShipment",
    "DispatchShipment",
    "HandlePaymentCallback",
    "MarkOrderPaid",
    "OrderLine",
    "PlaceOrder",
    "ReceiveStock",
    "RefundPayment",
    "RegisterCustomer",
    "ReserveStockForOrder",
    "ShipOrderStock",
]


def payment_id_for(order_id: str) -> str:
    """The id of the payment that pays ``order_id``."""
    return f"pay-{order_id}"


def shipment_id_for(order_id: str) -> str:
    """The id of the shipment that carries ``order_id``."""
    return f"shp-{order_id}"


# -- customers ---------------------------------------------------------------------


@attrs.frozen
class RegisterCustomer:
    customer_id: str
    name: str
    email: str
    city: str


@attrs.frozen
class ChangeCustomerAddress:
    customer_id: str
    city: str


@attrs.frozen
class DeactivateCustomer:
    customer_id: str
    reason: str


# -- inventory ---------------------------------------------------------------------


@attrs.frozen
class AddProduct:
    sku: str
    name: str
    unit_price: Decimal
    initial_stock: int = 0


@attrs.frozen
class ReceiveStock:
    sku: str
    quantity: int


@attrs.frozen
class ReserveStockForOrder:
    """Reserve every line of an order, all or nothing (process manager: order placed)."""

    order_id: str


@attrs.frozen
class ShipOrderStock:
    """Take an order's reserved stock off the shelves (process manager: order shipped)."""

    order_id: str


# -- orders --------------------------------------------------------------------------


@attrs.frozen
class PlaceOrder:
    order_id: str
    customer_id: str
    lines: tuple[OrderLine, ...]
    placed_at: datetime

    @property
    def payment_id(self) -> str:
        return payment_id_for(self.order_id)


@attrs.frozen
class MarkOrderPaid:
    """Record a captured payment on its order (process manager: payment captured)."""

    order_id: str
    payment_id: str
    amount: Decimal
    paid_at: datetime


@attrs.frozen
class CancelOrder:
    order_id: str
    reason: str
    at: datetime


@attrs.frozen
class CompensateCancelledOrder:
    """Release a cancelled order's stock and refund its payment (process manager)."""

    order_id: str
    at: datetime


# -- payments --------------------------------------------------------------------------


@attrs.frozen
class HandlePaymentCallback:
    """A payment provider's callback; repeats (same ``provider_ref``) change nothing."""

    payment_id: str
    provider_ref: str
    succeeded: bool
    amount: Decimal
    at: datetime
    reason: str = ""


@attrs.frozen
class RefundPayment:
    payment_id: str
    reason: str
    at: datetime


# -- shipping ----------------------------------------------------------------------------


@attrs.frozen
class CreateShipment:
    """Open the shipment of a paid, reserved order (process manager: order ready to ship)."""

    order_id: str

    @property
    def shipment_id(self) -> str:
        return shipment_id_for(self.order_id)


@attrs.frozen
class DispatchShipment:
    shipment_id: str
    tracking_number: str
    at: datetime


@attrs.frozen
class DeliverShipment:
    shipment_id: str
    at: datetime
