"""Public: the shop's consumers: 7 read models, 4 process managers and a notification outbox.

Read models (``READ_MODELS``) are declared against the ORM classes of
``examples.shop.models``; most rules are declarative, a few are functions.
Process managers (``process_managers(bus)``, the toolkit's ``ProcessManager``)
react to events by dispatching commands through the bus, inside the runner's
batch transaction, so the commands' events and the checkpoint commit together
(and each command id is derived from the event id: a replay dispatches nothing
twice). The outbox
(``notifications``) writes one row per event id and never rewrites it::

    runner = ProjectionRunner(engine, all_consumers(build_bus()))
    runner.run_until_caught_up()
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cqrs import CommandBus, Event, ProcessManager, RecordedEvent
from cqrs.projections import E, Projection, ProjectionContext
from examples.shop.commands import (
    CancelOrder,
    CompensateCancelledOrder,
    CreateShipment,
    MarkOrderPaid,
    ReserveStockForOrder,
    ShipOrderStock,
)
from examples.shop.events import (
    CustomerAddressChanged,
    CustomerDeactivated,
    CustomerRegistered,
    InventoryItemAdded,
    OrderCancelled,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderReadyToShip,
    OrderShipped,
    OrderStockReserved,
    PaymentCaptured,
    PaymentFailed,
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
from examples.shop.models import (
    CustomerHistoryEntry,
    CustomerProfile,
    DailySales,
    InventoryLevel,
    Notification,
    OrderSummary,
    PaymentLedgerEntry,
    ShipmentTracking,
)

EV = TypeVar("EV", bound=Event)
Recorded = RecordedEvent[Event]


def _units(recorded: Recorded) -> int:
    event = recorded.event
    assert isinstance(event, OrderPlaced)
    return sum(line.quantity for line in event.lines)


# -- order summary ---------------------------------------------------------------------

order_summary = Projection("order_summary", OrderSummary)
order_summary.on(OrderPlaced).upsert(
    order_id=E.order_id, customer_id=E.customer_id, status="placed", total=E.total,
    items=E(_units), placed_at=E.placed_at, payment_status="pending", stock_status="pending",
    shipment_id=None, cancel_reason=None,
)  # fmt: skip
order_summary.on(OrderStockReserved).update(key=E.order_id, stock_status="reserved")
order_summary.on(ReservationRejected).update(key=E.order_id, stock_status="rejected")
order_summary.on(StockReleased).update(key=E.order_id, stock_status="released")
order_summary.on(StockShipped).update(key=E.order_id, stock_status="shipped")
order_summary.on(OrderPaid).update(key=E.order_id, payment_status="paid")
order_summary.on(PaymentFailed).update(key=E.order_id, payment_status="failed")
order_summary.on(PaymentRefunded).update(key=E.order_id, payment_status="refunded")
order_summary.on(OrderReadyToShip).update(key=E.order_id, status="ready")
order_summary.on(OrderShipped).update(key=E.order_id, status="shipped", shipment_id=E.shipment_id)
order_summary.on(OrderDelivered).update(key=E.order_id, status="delivered")
order_summary.on(OrderCancelled).update(key=E.order_id, status="cancelled", cancel_reason=E.reason)

# -- customer profiles -----------------------------------------------------------------

customer_profiles = Projection("customer_profiles", CustomerProfile)
customer_profiles.on(CustomerRegistered).upsert(
    customer_id=E.customer_id, name=E.name, email=E.email, city=E.city, active=True,
    orders_placed=0, orders_cancelled=0, orders_delivered=0, total_spent=Decimal(0),
)  # fmt: skip
customer_profiles.on(CustomerAddressChanged).update(key=E.customer_id, city=E.city)
customer_profiles.on(CustomerDeactivated).update(key=E.customer_id, active=False)
customer_profiles.on(OrderPlaced).update(
    key=E.customer_id, orders_placed=CustomerProfile.orders_placed + 1
)
customer_profiles.on(OrderCancelled).update(
    key=E.customer_id, orders_cancelled=CustomerProfile.orders_cancelled + 1
)
customer_profiles.on(OrderDelivered).update(
    key=E.customer_id, orders_delivered=CustomerProfile.orders_delivered + 1
)
customer_profiles.on(PaymentCaptured).update(
    key=E.customer_id, total_spent=CustomerProfile.total_spent + E.amount
)
customer_profiles.on(PaymentRefunded).update(
    key=E.customer_id, total_spent=CustomerProfile.total_spent - E.amount
)

# -- customer history (a timeline) -------------------------------------------------------

customer_history = Projection("customer_history", CustomerHistoryEntry)


def _history(event_type: type[EV], kind: str, **values: Any) -> None:
    row = {"order_id": None, "amount": None, "detail": None, **values}
    customer_history.on(event_type).upsert(
        customer_id=E.customer_id, event_id=E.event_id, kind=kind, **row
    )


_history(CustomerRegistered, "registered", detail=E.city, at=E.recorded_at)
_history(CustomerAddressChanged, "moved", detail=E.city, at=E.recorded_at)
_history(CustomerDeactivated, "deactivated", detail=E.reason, at=E.recorded_at)
_history(OrderPlaced, "order_placed", order_id=E.order_id, amount=E.total, at=E.placed_at)
_history(OrderPaid, "order_paid", order_id=E.order_id, amount=E.amount, at=E.paid_at)
_history(OrderShipped, "order_shipped", order_id=E.order_id, detail=E.shipment_id, at=E.shipped_at)
_history(OrderDelivered, "order_delivered", order_id=E.order_id, at=E.delivered_at)
_history(OrderCancelled, "order_cancelled", order_id=E.order_id, detail=E.reason, at=E.cancelled_at)
_history(
    PaymentRefunded, "refunded", order_id=E.order_id, amount=E.amount, detail=E.reason,
    at=E.refunded_at,
)  # fmt: skip

# -- inventory levels ------------------------------------------------------------------------

inventory_levels = Projection("inventory_levels", InventoryLevel)
inventory_levels.on(InventoryItemAdded).upsert(
    sku=E.sku, name=E.name, unit_price=E.unit_price, on_hand=0, reserved=0, available=0,
    shipped=0, rejections=0,
)  # fmt: skip
inventory_levels.on(StockReceived).update(
    key=E.sku,
    on_hand=InventoryLevel.on_hand + E.quantity,
    available=InventoryLevel.available + E.quantity,
)
inventory_levels.on(StockReserved).update(
    key=E.sku,
    reserved=InventoryLevel.reserved + E.quantity,
    available=InventoryLevel.available - E.quantity,
)
inventory_levels.on(StockReleased).update(
    key=E.sku,
    reserved=InventoryLevel.reserved - E.quantity,
    available=InventoryLevel.available + E.quantity,
)
inventory_levels.on(StockShipped).update(
    key=E.sku,
    on_hand=InventoryLevel.on_hand - E.quantity,
    reserved=InventoryLevel.reserved - E.quantity,
    shipped=InventoryLevel.shipped + E.quantity,
)
inventory_levels.on(ReservationRejected).update(key=E.sku, rejections=InventoryLevel.rejections + 1)

# -- daily sales (function handlers: an upsert that adds to the day's row) ---------------------

daily_sales = Projection("daily_sales", DailySales)


def _add_to_day(ctx: ProjectionContext, at: datetime, **deltas: Any) -> None:
    table = ctx.table(DailySales)
    stmt = pg_insert(table).values(day=at.astimezone(UTC).date(), **deltas)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.day],
        set_={name: table.c[name] + stmt.excluded[name] for name in deltas},
    )
    ctx.connection.execute(stmt)


@daily_sales.on(OrderPlaced)
def _sales_placed(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
    _add_to_day(ctx, r.event.placed_at, orders_placed=1)


@daily_sales.on(OrderCancelled)
def _sales_cancelled(r: RecordedEvent[OrderCancelled], ctx: ProjectionContext) -> None:
    _add_to_day(ctx, r.event.cancelled_at, orders_cancelled=1)


@daily_sales.on(PaymentCaptured)
def _sales_captured(r: RecordedEvent[PaymentCaptured], ctx: ProjectionContext) -> None:
    _add_to_day(ctx, r.event.captured_at, gross=r.event.amount)


@daily_sales.on(PaymentRefunded)
def _sales_refunded(r: RecordedEvent[PaymentRefunded], ctx: ProjectionContext) -> None:
    _add_to_day(ctx, r.event.refunded_at, refunded=r.event.amount)


# -- shipment tracking --------------------------------------------------------------------------

shipment_tracking = Projection("shipment_tracking", ShipmentTracking)
shipment_tracking.on(ShipmentCreated).upsert(
    shipment_id=E.shipment_id, order_id=E.order_id, customer_id=E.customer_id, city=E.city,
    carrier=E.carrier, status="created", tracking_number=None, dispatched_at=None,
    delivered_at=None,
)  # fmt: skip
shipment_tracking.on(ShipmentDispatched).update(
    key=E.shipment_id, status="dispatched", tracking_number=E.tracking_number,
    dispatched_at=E.dispatched_at,
)  # fmt: skip
shipment_tracking.on(ShipmentDelivered).update(
    key=E.shipment_id, status="delivered", delivered_at=E.delivered_at
)

# -- payments ledger -------------------------------------------------------------------------------

payments_ledger = Projection("payments_ledger", PaymentLedgerEntry)
payments_ledger.on(PaymentCaptured).upsert(
    entry_id=E.event_id, payment_id=E.payment_id, order_id=E.order_id, kind="capture",
    amount=E.amount, provider_ref=E.provider_ref, at=E.captured_at,
)  # fmt: skip
payments_ledger.on(PaymentFailed).upsert(
    entry_id=E.event_id, payment_id=E.payment_id, order_id=E.order_id, kind="failure",
    amount=Decimal(0), provider_ref=E.provider_ref, at=E.failed_at,
)  # fmt: skip
payments_ledger.on(PaymentRefunded).upsert(
    entry_id=E.event_id, payment_id=E.payment_id, order_id=E.order_id, kind="refund",
    amount=-E.amount, provider_ref=None, at=E.refunded_at,
)  # fmt: skip

READ_MODELS: tuple[Projection, ...] = (
    order_summary, customer_profiles, customer_history, inventory_levels, daily_sales,
    shipment_tracking, payments_ledger,
)  # fmt: skip
"""The read-model projections; rebuilding one from the log gives the same rows."""

# -- notification outbox (an idempotent side effect) ------------------------------------------

notifications = Projection("notifications", Notification)
TEMPLATES: dict[type[Event], str] = {
    OrderPlaced: "order_received",
    OrderShipped: "order_shipped",
    OrderDelivered: "order_delivered",
    OrderCancelled: "order_cancelled",
    PaymentRefunded: "payment_refunded",
}


@notifications.on(*TEMPLATES)
def _notify(r: Recorded, ctx: ProjectionContext) -> None:
    """One outbox row per event id: ``ON CONFLICT DO NOTHING`` keeps a sent row sent."""
    table = ctx.table(Notification)
    event: Any = r.event
    stmt = pg_insert(table).values(
        event_id=r.event_id,
        recipient=event.customer_id,
        template=TEMPLATES[type(event)],
        order_id=event.order_id,
    )
    ctx.connection.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.event_id]))


def send_notifications(
    engine: Engine, send: Callable[[str, str, str | None], None], *, limit: int = 500
) -> int:
    """Deliver up to ``limit`` unsent outbox rows with ``send(recipient, template, order_id)``.

    Rows are locked ``FOR UPDATE SKIP LOCKED`` (several senders share the work)
    and marked sent in the same transaction; answers how many were sent.
    """
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT event_id, recipient, template, order_id FROM notification_outbox "
                "WHERE sent_at IS NULL ORDER BY created_at, event_id LIMIT :n "
                "FOR UPDATE SKIP LOCKED"
            ),
            {"n": limit},
        ).all()
        for _, recipient, template, order_id in rows:
            send(recipient, template, order_id)
        if rows:
            conn.execute(
                text("UPDATE notification_outbox SET sent_at = now() WHERE event_id = ANY(:ids)"),
                {"ids": [row[0] for row in rows]},
            )
    return len(rows)


# -- process managers ---------------------------------------------------------------------------


def process_managers(bus: CommandBus, *, batched: bool = True) -> tuple[ProcessManager, ...]:
    """The shop's process managers, dispatching through ``bus``.

    ``batched`` (the default) queues each runner batch's commands and runs them
    together at its end (``ProcessManager.enqueue``); ``False`` sends each
    command as its event is handled (``send``), one savepoint each.

    * ``stock_process``: order placed -> reserve its stock; a product short ->
      cancel the order; order shipped -> take its stock off the shelves.
    * ``payment_process``: payment captured -> mark the order paid (or refund,
      if it was cancelled meanwhile); payment failed -> cancel the order.
    * ``fulfilment_process``: order ready to ship -> create its shipment.
    * ``compensation_process``: order cancelled -> release stock, refund payment.
    """
    stock = ProcessManager("stock_process", bus)
    payment = ProcessManager("payment_process", bus)
    fulfilment = ProcessManager("fulfilment_process", bus)
    compensation = ProcessManager("compensation_process", bus)

    def dispatch(manager: ProcessManager, ctx: ProjectionContext, r: Recorded, cmd: object) -> None:
        if batched:
            manager.enqueue(ctx, r, cmd)
        else:
            manager.send(ctx, r, cmd)

    @stock.on(OrderPlaced)
    def _reserve(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        dispatch(stock, ctx, r, ReserveStockForOrder(r.event.order_id))

    @stock.on(ReservationRejected)
    def _short(r: RecordedEvent[ReservationRejected], ctx: ProjectionContext) -> None:
        e = r.event
        dispatch(stock, ctx, r, CancelOrder(e.order_id, f"out of stock: {e.sku}", e.at))

    @stock.on(OrderShipped)
    def _shipped(r: RecordedEvent[OrderShipped], ctx: ProjectionContext) -> None:
        dispatch(stock, ctx, r, ShipOrderStock(r.event.order_id))

    @payment.on(PaymentCaptured)
    def _captured(r: RecordedEvent[PaymentCaptured], ctx: ProjectionContext) -> None:
        e = r.event
        dispatch(payment, ctx, r, MarkOrderPaid(e.order_id, e.payment_id, e.amount, e.captured_at))

    @payment.on(PaymentFailed)
    def _failed(r: RecordedEvent[PaymentFailed], ctx: ProjectionContext) -> None:
        e = r.event
        dispatch(
            payment, ctx, r, CancelOrder(e.order_id, f"payment failed: {e.reason}", e.failed_at)
        )

    @fulfilment.on(OrderReadyToShip)
    def _ready(r: RecordedEvent[OrderReadyToShip], ctx: ProjectionContext) -> None:
        dispatch(fulfilment, ctx, r, CreateShipment(r.event.order_id))

    @compensation.on(OrderCancelled)
    def _cancelled(r: RecordedEvent[OrderCancelled], ctx: ProjectionContext) -> None:
        e = r.event
        dispatch(compensation, ctx, r, CompensateCancelledOrder(e.order_id, e.cancelled_at))

    return stock, payment, fulfilment, compensation


def all_consumers(bus: CommandBus) -> list[Projection]:
    """Every consumer of the shop: read models, process managers, the outbox (12)."""
    return [*READ_MODELS, *process_managers(bus), notifications]
