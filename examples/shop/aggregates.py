"""Public: the shop's five aggregates and the rules they keep.

* ``Customer``: registers once; a deactivated customer cannot order.
* ``Order``: placed with at least one line; paid and stock-reserved before it
  is ready to ship; never shipped unpaid; cancelled only before shipping.
* ``Payment``: provider callbacks are idempotent by provider reference (a
  repeat changes nothing); a settled payment cannot be settled again; only a
  captured payment is refunded, once.
* ``InventoryItem``: stock never goes negative: a reservation larger than the
  available stock is refused; one reservation per order.
* ``Shipment``: created, dispatched, delivered, in that order.

Command methods check and ``record``; ``@applies`` methods change state::

    >>> order = Order("o-1")
    >>> order.ship("shp-1", NOW)
    Traceback (most recent call last):
    ...
    examples.shop.errors.OrderNotPaid: order o-1 is not paid; ship it once the payment is captured
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from cqrs import Aggregate, applies
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
    CustomerAddressChanged,
    CustomerDeactivated,
    CustomerRegistered,
    InventoryItemAdded,
    OrderCancelled,
    OrderDelivered,
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

NOW = datetime(2026, 1, 1, tzinfo=UTC)
"""A fixed time for examples and tests."""


class Customer(Aggregate):
    """A shop customer (stream ``customer-<id>``)."""

    aggregate_type = "customer"

    registered: bool = False
    active: bool = False
    name: str = ""
    email: str = ""
    city: str = ""

    def register(self, name: str, email: str, city: str) -> None:
        if self.registered:
            raise CustomerRejected(f"customer {self.id} is already registered")
        if not name.strip() or "@" not in email or not city.strip():
            raise CustomerRejected(
                f"customer {self.id}: give a name, an e-mail address with '@' and a city"
            )
        self.record(CustomerRegistered(self.id, name, email, city))

    def change_address(self, city: str) -> None:
        self._require_registered()
        if not city.strip():
            raise CustomerRejected(f"customer {self.id}: the city must not be empty")
        if city != self.city:
            self.record(CustomerAddressChanged(self.id, city))

    def deactivate(self, reason: str) -> None:
        self._require_registered()
        if self.active:
            self.record(CustomerDeactivated(self.id, reason))

    def check_can_order(self) -> None:
        """Raise unless this customer may place an order."""
        self._require_registered()
        if not self.active:
            raise CustomerRejected(f"customer {self.id} is deactivated and cannot order")

    def _require_registered(self) -> None:
        if not self.registered:
            raise CustomerRejected(f"customer {self.id} is not registered; register it first")

    @applies(CustomerRegistered)
    def _registered(self, e: CustomerRegistered) -> None:
        self.registered = self.active = True
        self.name, self.email, self.city = e.name, e.email, e.city

    @applies(CustomerAddressChanged)
    def _moved(self, e: CustomerAddressChanged) -> None:
        self.city = e.city

    @applies(CustomerDeactivated)
    def _deactivated(self, e: CustomerDeactivated) -> None:
        self.active = False


class Order(Aggregate):
    """An order (stream ``order-<id>``): ``new`` -> ``placed`` -> ``shipped`` -> ``delivered``,
    or ``cancelled`` before shipping."""

    aggregate_type = "order"

    status: str = "new"
    customer_id: str = ""
    lines: tuple[OrderLine, ...] = ()
    total: Decimal = Decimal(0)
    placed_at: datetime | None = None
    stock_reserved: bool = False
    paid: bool = False
    payment_id: str | None = None
    ready: bool = False
    shipment_id: str | None = None

    def place(self, customer_id: str, lines: Sequence[OrderLine], placed_at: datetime) -> None:
        if self.status != "new":
            raise InvalidOrder(f"order {self.id} was already placed")
        if not lines:
            raise InvalidOrder(f"order {self.id} has no lines; add at least one product")
        skus = [line.sku for line in lines]
        if len(set(skus)) != len(skus):
            raise InvalidOrder(f"order {self.id} lists a product twice; merge the lines")
        for line in lines:
            if line.quantity < 1 or line.unit_price < 0:
                raise InvalidOrder(
                    f"order {self.id}: line {line.sku} needs a quantity >= 1 and a price >= 0"
                )
        total = sum((line.amount for line in lines), Decimal(0))
        self.record(OrderPlaced(self.id, customer_id, tuple(lines), total, placed_at))

    def mark_stock_reserved(self) -> None:
        self._require_open()
        if not self.stock_reserved:
            self.record(OrderStockReserved(self.id, self.customer_id))
            self._maybe_ready()

    def mark_paid(self, payment_id: str, amount: Decimal, paid_at: datetime) -> None:
        self._require_open()
        if self.paid:
            return
        if amount != self.total:
            raise InvalidOrder(f"order {self.id} totals {self.total}, the payment was {amount}")
        self.record(OrderPaid(self.id, self.customer_id, payment_id, amount, paid_at))
        self._maybe_ready()

    def check_shippable(self) -> None:
        """Raise unless the order is paid, its stock reserved and it is still open."""
        if not self.paid:
            raise OrderNotPaid(self.id)
        self._require_open()
        if not self.stock_reserved:
            raise OrderClosed(f"order {self.id} has no stock reserved yet; it cannot ship")

    def ship(self, shipment_id: str, shipped_at: datetime) -> None:
        if self.status == "shipped" and self.shipment_id == shipment_id:
            return
        self.check_shippable()
        self.record(OrderShipped(self.id, self.customer_id, shipment_id, shipped_at))

    def deliver(self, delivered_at: datetime) -> None:
        if self.status == "delivered":
            return
        if self.status != "shipped":
            raise OrderClosed(f"order {self.id} is {self.status}; only a shipped order arrives")
        self.record(OrderDelivered(self.id, self.customer_id, delivered_at))

    def cancel(self, reason: str, cancelled_at: datetime) -> None:
        if self.status == "cancelled":
            return
        if self.status == "new":
            raise InvalidOrder(f"order {self.id} was never placed")
        if self.status != "placed":
            raise OrderClosed(f"order {self.id} is already {self.status}; it cannot be cancelled")
        self.record(OrderCancelled(self.id, self.customer_id, reason, cancelled_at))

    def _require_open(self) -> None:
        if self.status == "new":
            raise InvalidOrder(f"order {self.id} was never placed")
        if self.status != "placed":
            raise OrderClosed(f"order {self.id} is {self.status}")

    def _maybe_ready(self) -> None:
        if self.paid and self.stock_reserved and not self.ready:
            self.record(OrderReadyToShip(self.id, self.customer_id))

    @applies(OrderPlaced)
    def _placed(self, e: OrderPlaced) -> None:
        self.status, self.customer_id = "placed", e.customer_id
        self.lines, self.total, self.placed_at = e.lines, e.total, e.placed_at

    @applies(OrderStockReserved)
    def _reserved(self, e: OrderStockReserved) -> None:
        self.stock_reserved = True

    @applies(OrderPaid)
    def _paid(self, e: OrderPaid) -> None:
        self.paid, self.payment_id = True, e.payment_id

    @applies(OrderReadyToShip)
    def _ready(self, e: OrderReadyToShip) -> None:
        self.ready = True

    @applies(OrderShipped)
    def _shipped(self, e: OrderShipped) -> None:
        self.status, self.shipment_id = "shipped", e.shipment_id

    @applies(OrderDelivered)
    def _delivered(self, e: OrderDelivered) -> None:
        self.status = "delivered"

    @applies(OrderCancelled)
    def _cancelled(self, e: OrderCancelled) -> None:
        self.status = "cancelled"


class Payment(Aggregate):
    """A payment of one order (stream ``payment-<id>``), settled by provider callbacks."""

    aggregate_type = "payment"

    status: str = "new"  # new, pending, captured, failed, refunded
    order_id: str = ""
    customer_id: str = ""
    amount: Decimal = Decimal(0)
    provider_refs: set[str]

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.provider_refs = set()

    def initiate(self, order_id: str, customer_id: str, amount: Decimal) -> None:
        if self.status != "new":
            raise PaymentRejected(f"payment {self.id} already exists")
        if amount <= 0:
            raise PaymentRejected(f"payment {self.id}: the amount must be positive, got {amount}")
        self.record(PaymentInitiated(self.id, order_id, customer_id, amount))

    def callback(
        self,
        provider_ref: str,
        succeeded: bool,
        amount: Decimal,
        at: datetime,
        reason: str = "",
    ) -> bool:
        """Apply a provider callback; ``False`` when its reference was seen (a no-op)."""
        if provider_ref in self.provider_refs:
            return False
        if self.status == "new":
            raise PaymentRejected(f"payment {self.id} was never initiated")
        if self.status != "pending":
            raise PaymentRejected(
                f"payment {self.id} is already {self.status}; callback {provider_ref} "
                "cannot settle it again"
            )
        if succeeded:
            if amount != self.amount:
                raise PaymentRejected(
                    f"payment {self.id} is for {self.amount}, the provider captured {amount}"
                )
            self.record(
                PaymentCaptured(self.id, self.order_id, self.customer_id, provider_ref, amount, at)
            )
        else:
            self.record(
                PaymentFailed(self.id, self.order_id, self.customer_id, provider_ref, reason, at)
            )
        return True

    def refund(self, reason: str, at: datetime) -> None:
        if self.status == "refunded":
            return
        if self.status != "captured":
            raise PaymentRejected(f"payment {self.id} is {self.status}; only captured refunds")
        self.record(
            PaymentRefunded(self.id, self.order_id, self.customer_id, self.amount, reason, at)
        )

    @applies(PaymentInitiated)
    def _initiated(self, e: PaymentInitiated) -> None:
        self.status, self.order_id, self.customer_id = "pending", e.order_id, e.customer_id
        self.amount = e.amount

    @applies(PaymentCaptured)
    def _captured(self, e: PaymentCaptured) -> None:
        self.status = "captured"
        self.provider_refs.add(e.provider_ref)

    @applies(PaymentFailed)
    def _failed(self, e: PaymentFailed) -> None:
        self.status = "failed"
        self.provider_refs.add(e.provider_ref)

    @applies(PaymentRefunded)
    def _refunded(self, e: PaymentRefunded) -> None:
        self.status = "refunded"


class InventoryItem(Aggregate):
    """Stock of one product (stream ``inventory-<sku>``); ``available`` never goes below 0."""

    aggregate_type = "inventory"
    snapshot_every = 25  # hot streams: every order touches a few products

    exists: bool = False
    name: str = ""
    unit_price: Decimal = Decimal(0)
    on_hand: int = 0
    reservations: dict[str, int]  # order id -> quantity held for it

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.reservations = {}

    @property
    def available(self) -> int:
        return self.on_hand - sum(self.reservations.values())

    def add(self, name: str, unit_price: Decimal) -> None:
        if self.exists:
            raise InventoryRejected(f"product {self.id} already exists")
        if unit_price < 0:
            raise InventoryRejected(f"product {self.id}: the price must not be negative")
        self.record(InventoryItemAdded(self.id, name, unit_price))

    def receive(self, quantity: int) -> None:
        self._require_exists()
        if quantity < 1:
            raise InventoryRejected(f"product {self.id}: receive a quantity >= 1, got {quantity}")
        self.record(StockReceived(self.id, quantity))

    def reserve(self, order_id: str, quantity: int) -> None:
        self._require_exists()
        if order_id in self.reservations:
            return
        if quantity < 1:
            raise InventoryRejected(f"product {self.id}: reserve a quantity >= 1")
        if quantity > self.available:
            raise InsufficientStock(self.id, quantity, self.available)
        self.record(StockReserved(self.id, order_id, quantity))

    def reject(self, order_id: str, requested: int, at: datetime) -> None:
        self._require_exists()
        self.record(ReservationRejected(self.id, order_id, requested, self.available, at))

    def release(self, order_id: str) -> None:
        quantity = self.reservations.get(order_id)
        if quantity is not None:
            self.record(StockReleased(self.id, order_id, quantity))

    def ship(self, order_id: str) -> None:
        quantity = self.reservations.get(order_id)
        if quantity is None:
            raise InventoryRejected(
                f"product {self.id} holds no reservation for order {order_id}; reserve first"
            )
        self.record(StockShipped(self.id, order_id, quantity))

    def _require_exists(self) -> None:
        if not self.exists:
            raise InventoryRejected(f"product {self.id} is unknown; add it to the inventory")

    @applies(InventoryItemAdded)
    def _added(self, e: InventoryItemAdded) -> None:
        self.exists, self.name, self.unit_price = True, e.name, e.unit_price

    @applies(StockReceived)
    def _received(self, e: StockReceived) -> None:
        self.on_hand += e.quantity

    @applies(StockReserved)
    def _reserved(self, e: StockReserved) -> None:
        self.reservations[e.order_id] = e.quantity

    @applies(ReservationRejected)
    def _rejected(self, e: ReservationRejected) -> None:
        pass  # a fact for the process managers; the stock did not change

    @applies(StockReleased)
    def _released(self, e: StockReleased) -> None:
        self.reservations.pop(e.order_id, None)

    @applies(StockShipped)
    def _shipped(self, e: StockShipped) -> None:
        self.reservations.pop(e.order_id, None)
        self.on_hand -= e.quantity


class Shipment(Aggregate):
    """The parcel of one order (stream ``shipment-<id>``)."""

    aggregate_type = "shipment"

    status: str = "new"  # new, created, dispatched, delivered
    order_id: str = ""
    customer_id: str = ""
    city: str = ""
    carrier: str = ""
    tracking_number: str | None = None

    def create(self, order_id: str, customer_id: str, city: str, carrier: str) -> None:
        if self.status != "new":
            raise ShipmentRejected(f"shipment {self.id} already exists")
        self.record(ShipmentCreated(self.id, order_id, customer_id, city, carrier))

    def dispatch(self, tracking_number: str, at: datetime) -> None:
        if self.status == "dispatched" and self.tracking_number == tracking_number:
            return
        if self.status != "created":
            raise ShipmentRejected(f"shipment {self.id} is {self.status}; it cannot be dispatched")
        self.record(ShipmentDispatched(self.id, self.order_id, tracking_number, at))

    def deliver(self, at: datetime) -> None:
        if self.status == "delivered":
            return
        if self.status != "dispatched":
            raise ShipmentRejected(f"shipment {self.id} is {self.status}; dispatch it first")
        self.record(ShipmentDelivered(self.id, self.order_id, at))

    @applies(ShipmentCreated)
    def _created(self, e: ShipmentCreated) -> None:
        self.status, self.order_id, self.customer_id = "created", e.order_id, e.customer_id
        self.city, self.carrier = e.city, e.carrier

    @applies(ShipmentDispatched)
    def _dispatched(self, e: ShipmentDispatched) -> None:
        self.status, self.tracking_number = "dispatched", e.tracking_number

    @applies(ShipmentDelivered)
    def _delivered(self, e: ShipmentDelivered) -> None:
        self.status = "delivered"
