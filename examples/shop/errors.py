"""Public: the shop's business-rule violations (the service's own errors, not the toolkit's).

Every rule an aggregate enforces raises a subclass of :class:`ShopError`; the
command is rejected and nothing it did is written::

    >>> raise OrderNotPaid("o-1")
    Traceback (most recent call last):
    ...
    examples.shop.errors.OrderNotPaid: order o-1 is not paid; ship it once the payment is captured
"""

from __future__ import annotations


class ShopError(Exception):
    """Base of the shop's rule violations."""


class InvalidOrder(ShopError):
    """An order that cannot be placed as given (no lines, bad quantity, unknown customer)."""


class OrderNotPaid(ShopError):
    """Shipping was asked for an order whose payment is not captured."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is not paid; ship it once the payment is captured")
        self.order_id = order_id


class OrderClosed(ShopError):
    """The order is cancelled, shipped or delivered, and the change no longer applies."""


class InsufficientStock(ShopError):
    """A reservation larger than the available stock (stock never goes negative)."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(
            f"cannot reserve {requested} of {sku}: only {available} available; "
            "receive stock first or reject the order"
        )
        self.sku = sku
        self.requested = requested
        self.available = available


class PaymentRejected(ShopError):
    """A payment callback or refund that contradicts the payment's state."""


class CustomerRejected(ShopError):
    """A customer rule: registering twice, ordering while deactivated."""


class ShipmentRejected(ShopError):
    """A shipment step out of order (deliver before dispatch, dispatch twice)."""


class InventoryRejected(ShopError):
    """An inventory change that makes no sense (non-positive quantities, unknown order)."""
