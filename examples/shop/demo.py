"""Public: the shop demo behind ``make demo``: a burst of orders, end to end.

1. starts the embedded PostgreSQL (or uses ``CQRS_DATABASE_URL``) and brings a
   fresh ``shop`` schema up with Alembic (``upgrade heads``: the toolkit's
   ``cqrs`` branch and the shop's read models);
2. sends a burst of orders through the command bus from several threads,
   with a progress bar, while two projection runners (read models + outbox,
   and process managers) follow the log;
3. plays the carriers (dispatch, deliver), runs the runners until the lag
   is zero, and prints a report: throughput, lag over time, and answers from
   the query side, checked against each other;
4. relays the order events to NATS JetStream and lets a second service
   (``examples.analytics``) consume them through its inbox into its own
   tables, with the cross-check that each arrived once.

Run it with ``python -m examples.demo [--orders N] [--workers N]``; it resets
its schema, so it runs any number of times in a row.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

import attrs
from sqlalchemy import Engine, func, make_url, select, text
from sqlalchemy.orm import Session

from cqrs import CommandBus
from cqrs.cli.progress import Progress
from cqrs.projections import Projection, ProjectionRunner, projection_status
from cqrs.queries import QueryBus
from cqrs.testing import database_url
from examples.shop import migrate, queries
from examples.shop.commands import HandlePaymentCallback, OrderLine, PlaceOrder
from examples.shop.events import OrderPlaced
from examples.shop.handlers import build_bus
from examples.shop.models import CustomerProfile, DailySales, InventoryLevel
from examples.shop.projections import (
    READ_MODELS,
    notifications,
    order_summary,
    process_managers,
    send_notifications,
)
from examples.shop.workload import (
    SIM_END,
    BurstResult,
    CarrierResult,
    Carriers,
    Workload,
    drive,
    setup,
)


def where(url: str, environ: Mapping[str, str] | None = None) -> str:
    """Where the demo's database lives, for its first line: the URL with its password
    masked, or the embedded server's data folder."""
    env = os.environ if environ is None else environ
    if env.get("CQRS_DATABASE_URL"):
        return make_url(url).render_as_string(hide_password=True)
    folder = os.path.abspath(env.get("CQRS_PGDATA") or ".cqrs/pgdata")
    return f"the embedded PostgreSQL 16, data in {folder} (CQRS_DATABASE_URL picks another)"


@attrs.frozen
class LagSample:
    seconds: float
    behind: int  # the most events any consumer still has to read
    worst: str


class LagSampler:
    """Samples every consumer's lag each ``interval`` seconds, in a thread."""

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine, self.interval = engine, interval
        self.samples: list[LagSample] = []
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="shop-lag", daemon=True)

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def sample(self) -> LagSample:
        shards = projection_status(self.engine)
        worst = max(shards, key=lambda s: s.behind, default=None)
        found = LagSample(
            time.perf_counter() - self._started,
            worst.behind if worst else 0,
            worst.projection if worst else "-",
        )
        self.samples.append(found)
        return found

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception as exc:  # a report detail, never a reason to fail the demo
                print(f"  (lag sample failed: {exc})", file=sys.stderr)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _follow(runners: Sequence[ProjectionRunner], stop: threading.Event) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=r.run_forever, args=(stop,), name=f"shop-runner-{i}", daemon=True)
        for i, r in enumerate(runners)
    ]
    for thread in threads:
        thread.start()
    return threads


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _sparkline(values: Sequence[int], width: int = 60) -> str:
    """``values`` as bar marks, at most ``width`` of them (the max of each bucket)."""
    marks = " ▁▂▃▄▅▆▇█"
    if len(values) > width:
        size = len(values) / width
        values = [max(values[int(i * size) : int((i + 1) * size)] or [0]) for i in range(width)]
    top = max(values, default=0) or 1
    return "".join(marks[min(8, round(8 * v / top))] for v in values)


def prepare(url: str, schema: str, *, workers: int = 4) -> Engine:
    """A fresh ``schema`` brought up with ``alembic upgrade heads``; an engine working in it."""
    engine = migrate.fresh_schema(url, schema, pool_size=workers + 6, max_overflow=4)
    with engine.connect() as conn:
        migrate.upgrade(conn)
    return engine


def run(
    *,
    orders: int = 1000,
    workers: int = 4,
    schema: str = "shop",
    seed: int = 42,
    out: TextIO = sys.stdout,
) -> DemoResult:
    """Run the whole demo in a fresh ``schema``; answer what it did and found."""
    started = time.perf_counter()
    url = database_url()
    print(f"shop demo: {orders} orders, {workers} workers, schema {schema!r}", file=out)
    print(f"  database: {where(url)}", file=out)
    engine = prepare(url, schema, workers=workers)
    try:
        print("  schema: alembic upgrade heads (branches cqrs + shop) done", file=out)
        result = run_on(engine, orders=orders, workers=workers, seed=seed, out=out, started=started)
        # the second service: order events out through the relay, in through its inbox
        from examples.analytics import demo as analytics

        services = analytics.run(engine, url, out=out)
        return attrs.evolve(result, consistent=result.consistent and services.consistent)
    finally:
        engine.dispose()


@attrs.frozen
class DemoResult:
    """What a demo run did and found (the report prints it; tests check it)."""

    orders_placed: int
    orders_refused: int
    errors: tuple[str, ...]
    events: int
    streams: int
    final_lag: int
    parked: int
    notified: int
    order_counts: dict[str, int]
    shipment_counts: dict[str, int]
    consistent: bool


@attrs.define
class _Measured:
    burst: BurstResult
    carried: CarrierResult
    samples: list[LagSample]
    events_after_burst: int
    caught_up: float
    read_your_writes: float
    notified: int
    final_lag: int
    total_seconds: float


def run_on(
    engine: Engine,
    *,
    orders: int = 1000,
    workers: int = 4,
    seed: int = 42,
    out: TextIO = sys.stdout,
    started: float | None = None,
) -> DemoResult:
    """The burst, the runners and the report, on a migrated ``engine``."""
    started = time.perf_counter() if started is None else started

    def emit(line: str) -> None:
        print(line, file=out, flush=True)

    bus = build_bus()
    query_bus = queries.build_query_bus(engine)
    stock, payment, fulfilment, compensation = process_managers(bus)
    plan = Workload.generate(orders, seed=seed)
    setup_commands = setup(engine, bus, plan)
    emit(
        f"  set-up: {len(plan.products)} products, {len(plan.customers)} customers "
        f"({setup_commands} commands)"
    )

    half = len(READ_MODELS) // 2
    groups: list[list[Projection]] = [
        # read models never touch each other's tables: any split works
        list(READ_MODELS[:half]),
        [*READ_MODELS[half:], notifications],
        # these three append to the same order, inventory and payment streams: one thread,
        # so their batches never wait on each other's row locks
        [stock, payment, compensation],
        [fulfilment],  # appends to shipment streams only
    ]
    stop = threading.Event()
    follow = _follow([ProjectionRunner(engine, g, poll_interval=0.2) for g in groups], stop)
    sampler = LagSampler(engine).start()

    parcels = Progress("  parcels", unit="parcels")
    carriers = Carriers(engine, bus, query_bus, workers=2, progress=parcels.advance).start()
    try:
        with Progress("  orders", len(plan.orders), unit="orders") as bar:
            burst = drive(engine, bus, plan, workers=workers, progress=bar.advance)
        events_after_burst = _count(engine, "SELECT count(*) FROM events")
        caught = time.perf_counter()
        read_your_writes = _read_your_writes(engine, bus, query_bus, plan)
        # process managers reserve stock, take payments, open shipments; carriers pick them up
        _wait_quiet(sampler, deadline=300)
    except BaseException:
        stop.set()
        sampler.stop()
        carriers.finish()
        raise
    carried = carriers.finish()
    parcels.close()
    _wait_quiet(sampler, deadline=120)
    stop.set()
    for thread in follow:
        thread.join(timeout=60)
    final = ProjectionRunner(engine, [*READ_MODELS, notifications, stock, payment, fulfilment,
                                      compensation], listen=False)  # fmt: skip
    try:
        final.run_until_caught_up(timeout=120)
    finally:
        final.close()
    sampler.stop()
    final_lag = sampler.sample().behind
    caught_up = time.perf_counter() - caught

    notified = 0
    while batch := send_notifications(engine, lambda who, template, order: None):
        notified += batch
    measured = _Measured(
        burst, carried, sampler.samples, events_after_burst, caught_up, read_your_writes,
        notified, final_lag, time.perf_counter() - started,
    )  # fmt: skip
    return _report(engine, query_bus, emit, measured)


def _read_your_writes(
    engine: Engine, bus: CommandBus, query_bus: QueryBus, plan: Workload
) -> float:
    """Place one more order and ask for it at once, waiting for ``order_summary`` to pass
    the order's position; answers the wait in seconds."""
    gone = {d.customer_id for d in plan.deactivations}
    customer = next(c.customer_id for c in plan.customers if c.customer_id not in gone)
    product = plan.products[1]
    command = PlaceOrder(
        "o-extra", customer, (OrderLine(product.sku, 1, product.unit_price),), SIM_END
    )
    with Session(engine) as session:
        outcome = bus.execute(command, session)
    token = str(outcome.recorded[-1].position)  # what a web client would carry back
    asked = time.perf_counter()
    view = query_bus.ask(
        queries.OrderStatus("o-extra"), after=token, wait_for=order_summary, timeout=120
    )
    waited = time.perf_counter() - asked
    if view is None:
        raise AssertionError("read-your-writes: the order was not visible after the wait")
    total = outcome.recorded[0].event
    assert isinstance(total, OrderPlaced)
    paid = HandlePaymentCallback(command.payment_id, "psp-extra", True, total.total, SIM_END)
    with Session(engine) as session:
        bus.dispatch(paid, session)
    return waited


def _wait_quiet(sampler: LagSampler, *, deadline: float) -> None:
    """Wait until every consumer is at the head twice in a row (process managers included)."""
    end = time.monotonic() + deadline
    zero = 0
    while time.monotonic() < end:
        zero = zero + 1 if sampler.sample().behind == 0 else 0
        if zero >= 2:
            return
        time.sleep(0.3)


def _report(
    engine: Engine, query_bus: QueryBus, emit: Callable[[str], None], m: _Measured
) -> DemoResult:
    burst, carried = m.burst, m.carried
    ask = query_bus.ask
    order_counts = ask(queries.OrderCounts())
    shipment_counts = ask(queries.ShipmentCounts())
    balance = ask(queries.PaymentsBalance())
    days = ask(queries.DailySales(days=7))
    top = ask(queries.TopCustomers(limit=3))
    low = ask(queries.LowStock(threshold=5))
    events = _count(engine, "SELECT count(*) FROM events")
    streams = _count(engine, "SELECT count(*) FROM streams")
    parked = _count(engine, "SELECT count(*) FROM dead_letters")
    with engine.connect() as conn:
        spent = conn.execute(select(func.sum(CustomerProfile.total_spent))).scalar_one()
        sold = conn.execute(select(func.sum(DailySales.gross - DailySales.refunded))).scalar_one()
        negative = conn.execute(
            select(func.count()).where(
                (InventoryLevel.available < 0) | (InventoryLevel.on_hand < 0)
            )
        ).scalar_one()
    placed = burst.orders_placed + 1  # and the read-your-writes order

    emit("")
    emit("== write side ==")
    emit(
        f"  orders placed {placed} (1 after the burst), refused by rules {burst.orders_refused}; "
        f"{burst.callbacks} payment callbacks ({burst.duplicate_callbacks} repeats ignored), "
        f"{burst.restocks} restocks"
    )
    emit(
        f"  {burst.commands} commands in {burst.seconds:.1f}s from the workers: "
        f"{burst.commands / burst.seconds:,.0f} commands/s, "
        f"{m.events_after_burst / burst.seconds:,.0f} events/s; {burst.conflicts} conflicts retried"
    )
    emit(
        f"  carriers: {carried.dispatched} parcels dispatched, {carried.delivered} delivered "
        f"in {carried.seconds:.1f}s"
    )
    emit(f"  the log: {events} events in {streams} streams")
    emit("")
    emit("== projections (12 consumers: 7 read models, 4 process managers, 1 outbox) ==")
    lags = [s.behind for s in m.samples]
    span = m.samples[-1].seconds if m.samples else 0.0
    emit("  lag = events already committed to the log that a consumer has not applied yet;")
    emit("  read models trail the writes, then catch up (a query that must see its own write")
    emit("  waits for that write's position token, as read-your-writes below shows)")
    emit(f"  lag over {span:.0f}s (events the furthest-behind consumer has to read):")
    emit(f"    |{_sparkline(lags)}|")
    peak = max(m.samples, key=lambda s: s.behind, default=None)
    if peak is not None:
        emit(f"  peak {peak.behind} events behind ({peak.worst}) at {peak.seconds:.0f}s")
    emit(
        f"  all consumers at the head {m.caught_up:.1f}s after the burst; lag now {m.final_lag}, "
        f"{parked} events parked"
    )
    emit(
        f"  read-your-writes: an order placed after the burst was in order_summary "
        f"{m.read_your_writes * 1000:,.0f} ms later (waited on its position token)"
    )
    emit(f"  notification outbox: {m.notified} messages sent, once each")
    emit("")
    emit("== query side ==")
    emit(f"  orders by status: {order_counts}")
    emit(f"  shipments by status: {shipment_counts}")
    emit(
        f"  payments: captured {balance.captured}, refunded {balance.refunded}, "
        f"net {balance.net}, {balance.failures} failed"
    )
    emit("  daily sales (placed / cancelled / net):")
    for d in days:
        emit(f"    {d.day}  {d.orders_placed:5d} / {d.orders_cancelled:3d} / {d.net:>10}")
    emit("  top customers: " + ", ".join(f"{c.name} ({c.total_spent})" for c in top))
    if top:
        orders_of = ask(queries.OrdersOfCustomer(top[0].customer_id, limit=3))
        emit(
            f"  {top[0].customer_id}'s latest orders: "
            + ", ".join(f"{o.order_id} {o.status} {o.total}" for o in orders_of)
        )
    emit("  low stock: " + (", ".join(f"{s.sku} ({s.available} left)" for s in low) or "none"))
    ok = spent == balance.net == sold and negative == 0 and m.final_lag == 0 and parked == 0
    emit(
        f"  cross-checks: customers' spend {spent} = ledger net {balance.net} = daily net {sold}; "
        f"no negative stock: {negative == 0} -> {'OK' if ok else 'MISMATCH'}"
    )
    emit(f"done in {m.total_seconds:.1f}s")
    return DemoResult(
        orders_placed=placed,
        orders_refused=burst.orders_refused,
        errors=(*burst.errors, *carried.errors),
        events=events,
        streams=streams,
        final_lag=m.final_lag,
        parked=parked,
        notified=m.notified,
        order_counts=order_counts,
        shipment_counts=shipment_counts,
        consistent=ok,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    parser.add_argument("--orders", type=int, default=1000, help="orders in the burst")
    parser.add_argument("--workers", type=int, default=4, help="concurrent writer threads")
    parser.add_argument("--schema", default="shop", help="schema to (re)create and use")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    # rule violations are expected in the burst (and counted): keep the log quiet about them
    logging.getLogger("cqrs.commands").setLevel(logging.ERROR)
    figures = run(orders=args.orders, workers=args.workers, schema=args.schema, seed=args.seed)
    if figures.errors or not figures.consistent:
        print(f"demo found problems: {list(figures.errors)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
