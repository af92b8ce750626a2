"""A small order domain shared by the command-side integration tests (not a test module)."""

from __future__ import annotations

import multiprocessing.synchronize
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import Aggregate, CommandBus, Event, UnitOfWork, applies, event
from cqrs.testing import schema_engine


@event("ctest.order.placed")
class OrderPlaced(Event):
    order_id: str
    customer_id: str
    total: Decimal


@event("ctest.order.item_added")
class ItemAdded(Event):
    order_id: str
    sku: str
    qty: int


@event("ctest.order.shipped")
class OrderShipped(Event):
    order_id: str


@event("ctest.order.noted")
class OrderNoted(Event):
    order_id: str
    note: str


@event("ctest.counter.incremented")
class Incremented(Event):
    by: int


class OrderError(Exception):
    pass


class Order(Aggregate):
    aggregate_type = "order"

    status: str = "new"
    customer_id: str = ""
    total: Decimal = Decimal(0)
    items: dict[str, int] = {}  # noqa: RUF012 - copied per instance by Aggregate
    notes: list[str] = []  # noqa: RUF012

    def place(self, customer_id: str, total: Decimal) -> None:
        if self.status != "new":
            raise OrderError(f"order {self.id} is already {self.status}")
        self.record(OrderPlaced(order_id=self.id, customer_id=customer_id, total=total))

    def add_item(self, sku: str, qty: int) -> None:
        self.record(ItemAdded(order_id=self.id, sku=sku, qty=qty))

    def ship(self) -> None:
        if self.status != "placed":
            raise OrderError(f"order {self.id} is {self.status}, it cannot ship")
        self.record(OrderShipped(order_id=self.id))

    @applies(OrderPlaced)
    def _placed(self, e: OrderPlaced) -> None:
        self.status, self.customer_id, self.total = "placed", e.customer_id, e.total

    @applies(ItemAdded)
    def _item(self, e: ItemAdded) -> None:
        self.items[e.sku] = self.items.get(e.sku, 0) + e.qty

    @applies(OrderShipped)
    def _shipped(self, e: OrderShipped) -> None:
        self.status = "shipped"

    @applies(OrderNoted)
    def _noted(self, e: OrderNoted) -> None:
        self.notes.append(e.note)


class SnappedOrder(Order):
    aggregate_type = "snappedorder"
    snapshot_every = 3


class Counter(Aggregate):
    aggregate_type = "counter"

    count: int = 0

    def increment(self, by: int) -> None:
        self.record(Incremented(by=by))

    @applies(Incremented)
    def _incremented(self, e: Incremented) -> None:
        self.count += e.by


@attrs.frozen
class PlaceOrder:
    order_id: str
    customer_id: str
    total: Decimal
    command_id: str | None = None


@attrs.frozen
class ShipOrder:
    order_id: str


@attrs.frozen
class PlaceTwoThenFail:
    first: str
    second: str


@attrs.frozen
class Increment:
    counter_id: str
    by: int = 1


@attrs.frozen
class Unrouted:
    pass


@attrs.frozen
class Receipt:
    order_id: str
    total: Decimal


def make_bus(**kwargs: Any) -> CommandBus:
    bus = CommandBus(**kwargs)

    @bus.handles(PlaceOrder)
    def place_order(cmd: PlaceOrder, uow: UnitOfWork) -> Receipt:
        order = uow.repository(Order).create(cmd.order_id)
        order.place(cmd.customer_id, cmd.total)
        return Receipt(order.id, order.total)

    @bus.handles(ShipOrder)
    def ship_order(cmd: ShipOrder, uow: UnitOfWork) -> None:
        uow.repository(Order).get(cmd.order_id).ship()

    @bus.handles(PlaceTwoThenFail)
    def place_two(cmd: PlaceTwoThenFail, uow: UnitOfWork) -> None:
        orders = uow.repository(Order)
        orders.create(cmd.first).place("c-1", Decimal(1))
        uow.repository(Counter).create(cmd.second).increment(1)
        raise OrderError("refused after touching two aggregates")

    @bus.handles(Increment)
    def increment(cmd: Increment, uow: UnitOfWork) -> int:
        counters = uow.repository(Counter)
        counter = counters.get_or_none(cmd.counter_id) or counters.create(cmd.counter_id)
        counter.increment(cmd.by)
        return counter.version

    return bus


def engine_for(url: str, schema: str) -> Engine:
    return schema_engine(url, schema)


def schema_of(engine: Engine) -> tuple[str, str]:
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return engine.url.render_as_string(hide_password=False), schema


def racing_increment(
    url: str,
    schema: str,
    counter_id: str,
    barrier: multiprocessing.synchronize.Barrier,
    results: Any,
) -> None:
    """Child process: load the counter, meet the other process, then increment.

    Both processes load the same version before either appends, so one of
    them must conflict and be retried by the bus.
    """
    bus = CommandBus()
    runs = 0

    @bus.handles(Increment)
    def synchronised(cmd: Increment, uow: UnitOfWork) -> int:
        nonlocal runs
        runs += 1
        counter = uow.repository(Counter).get(cmd.counter_id)
        if runs == 1:
            barrier.wait(timeout=60)
        counter.increment(cmd.by)
        return counter.version

    engine = engine_for(url, schema)
    try:
        with Session(engine) as session:
            outcome = bus.execute(Increment(counter_id), session)
        results.put((outcome.result, outcome.attempts))
    except BaseException as exc:  # report, so the parent fails with the reason
        results.put(("error", repr(exc)))
    finally:
        engine.dispose()
