"""Shared definitions for the projection tests (events, read models, projections).

Imported by the tests and by runner subprocesses (``python -m`` style via
``--module``); it holds no tests itself.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Integer, Numeric, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cqrs.events import Event, EventRegistry, RecordedEvent, event
from cqrs.projections.declarative import FailurePolicy, Projection, ProjectionContext
from cqrs.projections.expr import E
from cqrs.store.event_store import EventStore

REG = EventRegistry()


@event("pj.order.placed", registry=REG)
class OrderPlaced(Event):
    order_id: str
    customer_id: str
    total: Decimal


@event("pj.order.cancelled", registry=REG)
class OrderCancelled(Event):
    order_id: str


@event("pj.order.shipped", registry=REG)
class OrderShipped(Event):
    order_id: str


@event("pj.order.purged", registry=REG)
class OrderPurged(Event):
    order_id: str


@event("pj.item.added", registry=REG)
class ItemAdded(Event):
    order_id: str
    amount: Decimal


@event("pj.payment.made", registry=REG)
class PaymentMade(Event):
    customer_id: str
    amount: Decimal


@event("pj.marker", registry=REG)
class Marker(Event):
    """A test hook: handlers sleep, fail or record the connection on it."""

    action: str
    order_id: str = ""


class Base(DeclarativeBase):
    pass


class OrderSummary(Base):
    __tablename__ = "pj_order_summary"

    order_id: Mapped[str] = mapped_column(String, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String, default="")
    status: Mapped[str] = mapped_column(String)
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    items: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    last_version: Mapped[int] = mapped_column(Integer, default=0)


class CustomerView(Base):
    __tablename__ = "pj_customer_view"

    customer_id: Mapped[str] = mapped_column(String, primary_key=True)
    orders: Mapped[int] = mapped_column(Integer, default=0)
    paid: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal(0))


# Hooks the Marker handler consults (set by tests in this process, or by env in a subprocess).
HOOKS: dict[str, Any] = {"fail": set(), "pids": []}


def build_summary(
    name: str = "order_summary", *, shards: int = 1, batch_size: int = 500, retries: int = 1
) -> Projection:
    """The order summary: declarative rules plus a function handler."""
    p = Projection(
        name,
        OrderSummary,
        shards=shards,
        batch_size=batch_size,
        policy=FailurePolicy(retries=retries, backoff=0.01, max_backoff=0.05),
        registry=REG,
    )
    p.on(OrderPlaced).upsert(
        order_id=E.order_id,
        customer_id=E.customer_id,
        status="placed",
        total=E.total,
        items=0,
        applied=1,
        last_version=E.version,
    )
    p.on(OrderCancelled).update(
        key=E.order_id,
        status="cancelled",
        applied=OrderSummary.applied + 1,
        last_version=E.version,
    )
    p.on(ItemAdded).update(
        key=E.order_id,
        items=OrderSummary.items + 1,
        total=OrderSummary.total + E.amount,
        applied=OrderSummary.applied + 1,
        last_version=E.version,
    )
    p.on(OrderPurged).delete(key=E.order_id)

    @p.on(OrderShipped)
    def _shipped(e: RecordedEvent[OrderShipped], ctx: ProjectionContext) -> None:
        ctx.update(
            OrderSummary,
            e.event.order_id,
            status="shipped",
            applied=OrderSummary.applied + 1,
            last_version=e.version,
        )

    @p.on(Marker)
    def _marker(e: RecordedEvent[Marker], ctx: ProjectionContext) -> None:
        action = e.event.action
        if action == "sleep":
            pid = ctx.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            HOOKS["pids"].append(pid)
            marker = os.environ.get("PJ_MARKER_FILE")
            if marker:
                with open(marker, "w") as f:
                    f.write(str(pid))
            gate = HOOKS.get("gate")
            if gate is not None:
                gate.wait(10)
            else:
                time.sleep(float(os.environ.get("PJ_SLEEP", "0")))
        elif action == "pid":
            pid = ctx.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            HOOKS["pids"].append(pid)
        elif action == "fail" and e.event.order_id in HOOKS["fail"]:
            raise ValueError(f"poison event for {e.event.order_id}")
        elif action == "touch":
            ctx.update(OrderSummary, e.event.order_id, applied=OrderSummary.applied + 1)

    return p


def build_customers(name: str = "customer_view") -> Projection:
    """A multi-stream view fed by order and payment streams."""
    p = Projection(name, CustomerView, registry=REG)
    p.on(OrderPlaced).upsert(customer_id=E.customer_id)

    @p.on(OrderPlaced)
    def _count(e: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        ctx.update(CustomerView, e.event.customer_id, orders=CustomerView.orders + 1)

    p.on(PaymentMade).upsert(customer_id=E.customer_id)
    p.on(PaymentMade).update(key=E.customer_id, paid=CustomerView.paid + E.amount)
    return p


projections = [build_summary()]


def store() -> EventStore:
    return EventStore(registry=REG)


def create_read_models(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def summary_rows(engine: Engine, table: Any = OrderSummary) -> list[tuple[Any, ...]]:
    t = table.__table__ if hasattr(table, "__table__") else table
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t).order_by(t.c.order_id))]


def append(engine: Engine, stream_id: str, *events: Event) -> Any:
    with Session(engine) as session, session.begin():
        return store().append(session, stream_id, list(events))


def fresh_replay(engine: Engine, projection: Projection | None = None) -> list[tuple[Any, ...]]:
    """The read model a single replay of the whole log gives (in a scratch table)."""
    from sqlalchemy import MetaData, text

    projection = projection or build_summary("replay")
    table = OrderSummary.__table__
    shadow = table.to_metadata(MetaData(), name="pj_replay")  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS pj_replay"))
        conn.execute(text("CREATE TABLE pj_replay (LIKE pj_order_summary INCLUDING ALL)"))
        events = []
        after = None
        while True:
            kwargs = {} if after is None else {"after": after}
            batch = store().read_all(conn, limit=1000, **kwargs)
            if not batch:
                break
            events.extend(batch)
            after = batch[-1].position
        saved = HOOKS["fail"]
        HOOKS["fail"] = set()
        try:
            projection.apply(conn, events, table_map={table: shadow})
        finally:
            HOOKS["fail"] = saved
    return summary_rows(engine, shadow)
