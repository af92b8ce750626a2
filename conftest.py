"""Internal: what the ``>>>`` examples in ``cqrs/`` run against (``pytest --doctest-modules``).

The docstrings' examples speak of a reader's service: an ``Order`` aggregate,
``OrderPlaced`` and ``OrderShipped`` events, ``PlaceOrder`` and ``ShipOrder``
commands on a ``bus``, an ``engine`` on a database. This file defines that
small domain once and hands it to every doctest through pytest's
``doctest_namespace``; an example that touches the database (it names
``engine``, ``conn``, ``session``, ...) gets a fresh schema with the toolkit's
tables on the test database (``cqrs_database_url``: ``CQRS_TEST_DATABASE_URL``,
else the embedded PostgreSQL), dropped afterwards.

It lives at the repository root, not in ``cqrs/``, so the wheel does not ship it.
No ``from __future__ import annotations`` here: the classes' annotations must be
objects, not names looked up later in ``sys.modules["conftest"]``, which pytest
hands to ``tests/conftest.py`` once that one is imported.
"""

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import pytest
from _pytest.doctest import DoctestItem
from sqlalchemy import String, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

from cqrs import Aggregate, CommandBus, Event, UnitOfWork, applies, event
from cqrs.events import default_registry
from cqrs.events.model import Position, RecordedEvent
from cqrs.projections import ProcessManager, ProjectionContext
from cqrs.store import ANY, NO_STREAM
from cqrs.testing import isolated_schema

# Modules that only run inside a host: Alembic's env.py and the revision scripts.
collect_ignore = ["cqrs/migrations/env.py", "cqrs/migrations/versions"]


@event("doctest.order.placed")
class OrderPlaced(Event):
    order_id: str
    customer_id: str
    total: Decimal


@event("doctest.order.paid")
class OrderPaid(Event):
    order_id: str


@event("doctest.order.shipped")
class OrderShipped(Event):
    order_id: str


@event("doctest.payment.captured")
class PaymentCaptured(Event):
    payment_id: str
    order_id: str
    amount: Decimal


@event("doctest.shipment.created")
class ShipmentCreated(Event):
    shipment_id: str
    order_id: str


class Order(Aggregate):
    aggregate_type = "order"
    status: str = "new"
    total: Decimal = Decimal(0)

    def place(self, customer_id: str, total: Decimal) -> None:
        self.record(OrderPlaced(order_id=self.id, customer_id=customer_id, total=total))

    def pay(self) -> None:
        self.record(OrderPaid(order_id=self.id))

    def ship(self) -> None:
        if self.status not in ("placed", "paid"):
            raise ValueError(f"order {self.id} is {self.status}, it cannot ship")
        self.record(OrderShipped(order_id=self.id))

    @applies(OrderPlaced)
    def _placed(self, e: OrderPlaced) -> None:
        self.status, self.total = "placed", e.total

    @applies(OrderPaid)
    def _paid(self, e: OrderPaid) -> None:
        self.status = "paid"

    @applies(OrderShipped)
    def _shipped(self, e: OrderShipped) -> None:
        self.status = "shipped"


class Payment(Aggregate):
    aggregate_type = "payment"
    order_id: str = ""

    @applies(PaymentCaptured)
    def _captured(self, e: PaymentCaptured) -> None:
        self.order_id = e.order_id


class Shipment(Aggregate):
    aggregate_type = "shipment"
    order_id: str = ""

    def create(self, order_id: str) -> None:
        self.record(ShipmentCreated(shipment_id=self.id, order_id=order_id))

    @applies(ShipmentCreated)
    def _created(self, e: ShipmentCreated) -> None:
        self.order_id = e.order_id


@attrs.frozen
class PlaceOrder:
    order_id: str
    customer_id: str
    total: Decimal


@attrs.frozen
class ShipOrder:
    order_id: str


@attrs.frozen
class MarkOrderPaid:
    order_id: str


@attrs.frozen
class CreateShipment:
    order_id: str


class Base(DeclarativeBase):
    """The reader's own ORM models."""


class AuditRow(Base):
    __tablename__ = "doctest_audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(40))


def _build_bus() -> CommandBus:
    bus = CommandBus()

    @bus.handles(PlaceOrder)
    def place_order(cmd: PlaceOrder, uow: UnitOfWork) -> str:
        uow.repository(Order).create(cmd.order_id).place(cmd.customer_id, cmd.total)
        return cmd.order_id

    @bus.handles(ShipOrder)
    def ship_order(cmd: ShipOrder, uow: UnitOfWork) -> None:
        uow.repository(Order).get(cmd.order_id).ship()

    @bus.handles(MarkOrderPaid)
    def mark_order_paid(cmd: MarkOrderPaid, uow: UnitOfWork) -> None:
        uow.repository(Order).get(cmd.order_id).pay()

    @bus.handles(CreateShipment)
    def create_shipment(cmd: CreateShipment, uow: UnitOfWork) -> str:
        shipment = uow.repository(Shipment).create(f"s-{cmd.order_id}")
        shipment.create(cmd.order_id)
        return shipment.id

    return bus


bus = _build_bus()
shipping = ProcessManager("shipping", bus)


@shipping.on(PaymentCaptured)
def _paid_then_ship(r: RecordedEvent[PaymentCaptured], ctx: ProjectionContext) -> None:
    shipping.send(ctx, r, MarkOrderPaid(r.event.order_id), key="pay")
    shipping.send(ctx, r, CreateShipment(r.event.order_id), key="ship")


recorded = RecordedEvent(
    event_id=uuid.UUID("0193b0c4-7a1e-7c3d-9f00-5e1b2c3d4e5f"),
    stream_id="payment-p-1",
    stream_type="payment",
    version=1,
    position=Position(812, 40),
    event_type="doctest.payment.captured",
    schema_version=1,
    event=PaymentCaptured(payment_id="p-1", order_id="o-1", amount=Decimal(5)),
    metadata={},
    recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
)

NAMESPACE: dict[str, Any] = {
    "Decimal": Decimal,
    "Session": Session,
    "sessionmaker": sessionmaker,
    "text": text,
    "ANY": ANY,
    "NO_STREAM": NO_STREAM,
    "registry": default_registry,
    "OrderPlaced": OrderPlaced,
    "OrderPaid": OrderPaid,
    "OrderShipped": OrderShipped,
    "PaymentCaptured": PaymentCaptured,
    "ShipmentCreated": ShipmentCreated,
    "Order": Order,
    "Payment": Payment,
    "Shipment": Shipment,
    "PlaceOrder": PlaceOrder,
    "ShipOrder": ShipOrder,
    "Base": Base,
    "AuditRow": AuditRow,
    "bus": bus,
    "shipping": shipping,
    "manager": shipping,
    "recorded": recorded,
    "statsd_observe": lambda metrics: None,  # a metrics client's function, say
}

# An example that names one of these gets a database: a fresh schema per example.
_DATABASE_NAMES = re.compile(r"\b(engine|cqrs_engine|async_engine|conn|autocommit_conn|session)\b")


@pytest.fixture(autouse=True)
def _cqrs_doctest_namespace(
    request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]
) -> Iterator[None]:
    """The domain above for every doctest, and a database for the ones that use one."""
    if not isinstance(request.node, DoctestItem):
        yield
        return
    doctest_namespace.update(NAMESPACE)
    source = "".join(example.source for example in request.node.dtest.examples)
    if not _DATABASE_NAMES.search(source):
        yield
        return
    url = request.getfixturevalue("cqrs_database_url")
    with isolated_schema(url, metadata=[Base.metadata], prefix="doctest") as engine:
        # NullPool: no connection outlives the event loop of the example's asyncio.run
        async_engine = create_async_engine(
            engine.url, connect_args={"options": _search_path(engine)}, poolclass=NullPool
        )
        conn = engine.connect()
        autocommit_conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        doctest_namespace.update(
            engine=engine, cqrs_engine=engine, async_engine=async_engine, conn=conn,
            autocommit_conn=autocommit_conn,
        )  # fmt: skip
        try:
            yield
        finally:
            conn.close()
            autocommit_conn.close()
            async_engine.sync_engine.dispose()
            for name in ("engine", "cqrs_engine", "async_engine", "conn", "autocommit_conn"):
                doctest_namespace.pop(name, None)


def _search_path(engine: Any) -> str:
    with engine.connect() as conn:
        return f"-csearch_path={conn.execute(text('SHOW search_path')).scalar_one()}"
