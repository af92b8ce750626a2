"""Internal: drive the shop at a steady order rate while its 12 consumers follow live.

``python -m benchmarks.shop_rate --rate 50 --seconds 300 --database-url URL``

Orders (with their payment callbacks and the odd restock) are sent through the
shop's command bus at ``--rate`` orders a second from writer threads, while the
example's consumers (7 read models, 4 process managers, the outbox) run in their
runners exactly as ``make demo`` runs them and the carriers dispatch and deliver
parcels. Every ``--sample`` seconds each consumer's lag is sampled: events
behind the head, and seconds behind (the age of the oldest event it has not
passed). At the end: p50/p90/p99/max per consumer, orders/s achieved, the load
average, and the end state verified (every order in a final state, read models
matching the log and each other). The exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

import attrs
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import CommandBus
from cqrs.config import normalise_url
from cqrs.projections import Projection, ProjectionRunner
from cqrs.testing import database_url, schema_engine
from examples.shop import migrate, queries
from examples.shop.errors import ShopError
from examples.shop.handlers import build_bus
from examples.shop.projections import READ_MODELS, notifications, process_managers
from examples.shop.workload import BurstResult, Carriers, OrderPlan, Workload, drive, setup

# Every consumer, with or without a checkpoint yet (none: it is behind the whole log).
LAG = text(
    "WITH c AS (SELECT n.name, coalesce(c.transaction_id, '0'::xid8) AS xid, "
    "                  coalesce(c.global_position, 0) AS pos "
    "           FROM unnest(CAST(:names AS text[])) AS n(name) "
    "           LEFT JOIN checkpoints c ON c.projection = n.name AND c.shard = 0) "
    "SELECT c.name, "
    "  (SELECT count(*) FROM events e "
    "     WHERE (e.transaction_id, e.global_position) > (c.xid, c.pos)), "
    "  (SELECT extract(epoch FROM clock_timestamp() - min(e.recorded_at)) FROM events e "
    "     WHERE (e.transaction_id, e.global_position) > (c.xid, c.pos)) "
    "FROM c ORDER BY 1"
)

# An order's status in the log: the latest of these events it has decides it.
STATUS_OF = (
    ("shop.order.cancelled", "cancelled"),
    ("shop.order.delivered", "delivered"),
    ("shop.order.shipped", "shipped"),
    ("shop.order.ready_to_ship", "ready"),
    ("shop.order.placed", "placed"),
)
ORDER_EVENTS = text(
    "SELECT stream_id, array_agg(event_type) FROM events "
    "WHERE stream_type = 'order' GROUP BY stream_id"
)
SUMMARY = text("SELECT order_id, status, payment_status FROM order_summary")


def consumer_groups(bus: CommandBus, *, batched: bool = True) -> list[list[Projection]]:
    """The 12 consumers in the runner groups ``make demo`` uses (one runner a group);
    ``batched=False``: the process managers send each command alone (the old path)."""
    stock, payment, fulfilment, compensation = process_managers(bus, batched=batched)
    half = len(READ_MODELS) // 2
    return [
        list(READ_MODELS[:half]),
        [*READ_MODELS[half:], notifications],
        [stock, payment, compensation],
        [fulfilment],
    ]


@attrs.define
class Lags:
    """Samples of every consumer's lag: events behind and seconds behind."""

    events: dict[str, list[int]] = attrs.Factory(dict)
    seconds: dict[str, list[float]] = attrs.Factory(dict)

    def add(self, name: str, behind: int, age: float) -> None:
        self.events.setdefault(name, []).append(behind)
        self.seconds.setdefault(name, []).append(age)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; 0 when there are none.

    >>> percentile([1, 2, 3, 4], 0.5), percentile([1, 2, 3, 4], 0.99)
    (2, 4)
    """
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, -(-round(q * len(ordered) * 1000) // 1000) - 1))
    return ordered[rank]


class Sampler:
    """Samples every consumer's lag each ``interval`` seconds, in a thread."""

    def __init__(self, engine: Engine, names: Sequence[str], interval: float) -> None:
        self.engine, self.names, self.interval = engine, list(names), interval
        self.lags = Lags()
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shop-rate-lag", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        with self.engine.connect() as conn:
            for name, behind, age in conn.execute(LAG, {"names": self.names}):
                self.lags.add(name, int(behind), float(age or 0.0))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:
                self.failures += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@attrs.define
class Written:
    orders: int = 0
    seconds: float = 0.0
    late: float = 0.0  # how far the last order was sent behind its schedule


def write_at_rate(
    engine: Engine,
    bus: CommandBus,
    orders: Sequence[OrderPlan],
    rate: float,
    burst: BurstResult,
    *,
    workers: int = 4,
) -> Written:
    """Send ``orders`` at ``rate`` a second (order i due at i / rate) from ``workers`` threads."""
    lock = threading.Lock()
    counter = iter(range(len(orders)))
    written = Written()
    started = time.perf_counter()

    def work() -> None:
        with Session(engine) as session:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                due = started + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                _send_order(bus, session, orders[i], burst)
                with lock:
                    written.orders += 1
                    written.late = max(written.late, time.perf_counter() - due)

    threads = [threading.Thread(target=work, name=f"shop-rate-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written.seconds = time.perf_counter() - started
    return written


def _send_order(bus: CommandBus, session: Session, order: OrderPlan, burst: BurstResult) -> None:
    try:
        bus.execute(order.place, session)
    except ShopError:
        burst.add(orders_refused=1, commands=1)
        return
    except Exception as exc:
        burst.errors.append(f"{order.place.order_id}: {type(exc).__name__}: {exc}")
        return
    burst.add(orders_placed=1, commands=1)
    for callback in order.callbacks:
        bus.execute(callback, session)
        burst.add(callbacks=1, commands=1)
    if order.restock is not None:
        bus.execute(order.restock, session)
        burst.add(restocks=1, commands=1)


@attrs.frozen
class Check:
    name: str
    ok: bool
    detail: str = ""


def log_status(kinds: Sequence[str]) -> str:
    """An order's status from the types of its events (``STATUS_OF``)."""
    present = set(kinds)
    return next((status for kind, status in STATUS_OF if kind in present), "none")


def verify(engine: Engine, placed: int) -> list[Check]:
    """The end state: every order final, read models matching the log and each other."""
    checks: list[Check] = []
    with engine.connect() as conn:
        summary = {oid: (status, paid) for oid, status, paid in conn.execute(SUMMARY)}
        in_log = {sid: log_status(kinds) for sid, kinds in conn.execute(ORDER_EVENTS)}
        scalar = conn.execute  # short alias for the one-number queries below

        def one(sql: str) -> object:
            return scalar(text(sql)).scalar_one()

        parked = one("SELECT count(*) FROM dead_letters")
        negative = one(
            "SELECT count(*) FROM inventory_levels WHERE available < 0 OR on_hand < 0 "
            "OR reserved < 0"
        )
        reserved = one("SELECT coalesce(sum(reserved), 0) FROM inventory_levels")
        spent = one("SELECT coalesce(sum(total_spent), 0) FROM customer_profiles")
        ledger = one("SELECT coalesce(sum(amount), 0) FROM payments_ledger")
        daily = one("SELECT coalesce(sum(gross - refunded), 0) FROM daily_sales")
        profiles = one("SELECT coalesce(sum(orders_placed), 0) FROM customer_profiles")
        undelivered = one("SELECT count(*) FROM shipment_tracking WHERE status = 'created'")
        unsent = one("SELECT count(*) FROM notification_outbox")
    final = {"shipped", "delivered", "cancelled"}
    not_final = sorted(oid for oid, (status, _) in summary.items() if status not in final)
    checks.append(Check("orders placed = order_summary rows", placed == len(summary),
                        f"{placed} placed, {len(summary)} rows"))  # fmt: skip
    checks.append(Check("every order in a final state", not not_final,
                        f"{len(not_final)} not final, e.g. {not_final[:3]}"))  # fmt: skip
    stream_of = {f"order-{oid}": oid for oid in summary}
    differ = [
        sid for sid, status in in_log.items()
        if summary.get(stream_of.get(sid, sid), ("?", ""))[0] != status
    ]  # fmt: skip
    checks.append(Check("order_summary status = the log's", not differ and len(in_log) == placed,
                        f"{len(differ)} differ of {len(in_log)}, e.g. {differ[:3]}"))  # fmt: skip
    unpaid = [
        oid for oid, (status, paid) in summary.items()
        if status in {"shipped", "delivered"} and paid != "paid"
    ]  # fmt: skip
    checks.append(Check("shipped orders are paid", not unpaid, f"{len(unpaid)} unpaid"))
    checks.append(Check("customers' orders = orders placed", profiles == placed,
                        f"{profiles} vs {placed}"))  # fmt: skip
    checks.append(Check("spend = ledger net = daily net", spent == ledger == daily,
                        f"{spent} / {ledger} / {daily}"))  # fmt: skip
    checks.append(Check("no negative stock", negative == 0, f"{negative} rows"))
    checks.append(Check("no stock left reserved", reserved == 0, f"{reserved} units"))
    checks.append(Check("no shipment left undispatched", undelivered == 0, f"{undelivered}"))
    checks.append(Check("nothing parked", parked == 0, f"{parked} dead letters"))
    checks.append(Check("outbox rows written", bool(unsent), f"{unsent} rows"))
    return checks


@attrs.frozen
class RateResult:
    rate: float
    orders: int
    placed: int
    orders_per_second: float
    caught_up: float
    lags: Lags
    checks: tuple[Check, ...]
    load: tuple[float, float, float]
    errors: tuple[str, ...]
    cpu: float = 0.0  # this process's CPU seconds while the orders were written
    cpu_includes_runners: bool = True
    ready: float = 0.0  # seconds from starting the consumers to all at the head, before the writes

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.errors


def run(
    url: str,
    *,
    rate: float = 50,
    seconds: float = 60,
    schema: str = "shop_rate",
    seed: int = 42,
    sample: float = 0.5,
    workers: int = 4,
    drain_timeout: float = 600,
    out: TextIO = sys.stdout,
    processes: bool = False,
    durable: bool = True,
) -> RateResult:
    """One run; prints the report on ``out`` and answers the figures. ``processes``: each
    runner group in a process of its own (as ``cqrs projections run`` deploys them)
    instead of a thread of this process (as ``make demo`` runs them). ``durable=False``:
    runners commit read-model batches without waiting for the WAL flush (process
    managers stay durable)."""
    orders = max(1, round(rate * seconds))
    engine = migrate.fresh_schema(url, schema, pool_size=workers + 8, max_overflow=4)
    try:
        with engine.connect() as conn:
            migrate.upgrade(conn)
        return _run_on(engine, rate=rate, orders=orders, seed=seed, sample=sample,
                       workers=workers, drain_timeout=drain_timeout, out=out,
                       processes=processes, durable=durable)  # fmt: skip
    finally:
        engine.dispose()


def _run_on(
    engine: Engine,
    *,
    rate: float,
    orders: int,
    seed: int,
    sample: float,
    workers: int,
    drain_timeout: float,
    out: TextIO,
    processes: bool = False,
    durable: bool = True,
) -> RateResult:
    bus = build_bus()
    query_bus = queries.build_query_bus(engine)
    plan = Workload.generate(orders, seed=seed)
    setup(engine, bus, plan)
    stop = threading.Event()
    groups = consumer_groups(bus)
    names = [p.name for g in groups for p in g]
    if processes:
        threads = _runner_processes(engine, len(groups), durable)
    else:
        runners = [ProjectionRunner(engine, g, poll_interval=0.2, durable=durable) for g in groups]
        threads = [
            threading.Thread(target=r.run_forever, args=(stop,), daemon=True) for r in runners
        ]
    for thread in threads:
        thread.start()
    # The clock starts with every consumer running and at the head of the setup's
    # events, as in a service whose consumers run before its traffic arrives: the
    # seconds a runner process takes to start (import, connect) are not lag.
    ready = _drain(engine, names, drain_timeout)
    carriers = Carriers(engine, bus, query_bus, workers=2).start()
    sampler = Sampler(engine, names, sample).start()
    burst = BurstResult()
    load_before = os.getloadavg()
    cpu = time.process_time()
    try:
        written = write_at_rate(engine, bus, plan.orders, rate, burst, workers=workers)
        load_during = os.getloadavg()
        cpu = time.process_time() - cpu
        ended = time.perf_counter()
        sampler.stop()  # lag percentiles cover the steady phase only
        caught_up = _drain(engine, names, drain_timeout)
        carried = carriers.finish()
        _drain(engine, names, drain_timeout)
        caught_up_all = time.perf_counter() - ended
    finally:
        stop.set()
        sampler.stop()
        for thread in threads:
            if isinstance(thread, _RunnerProcess):
                thread.stop()
            thread.join(timeout=60)
    checks = verify(engine, burst.orders_placed)
    result = RateResult(
        rate, orders, burst.orders_placed, written.orders / written.seconds, caught_up,
        sampler.lags, tuple(checks), load_during, (*burst.errors, *carried.errors), cpu,
        not processes, ready,
    )  # fmt: skip
    _report(result, written, caught_up_all, load_before, out)
    if not durable:
        print("(read-model batches committed with synchronous_commit=off: --no-durable)", file=out)
    return result


def _runner_main(url: str, schema: str, group: int, stop: Any, durable: bool = True) -> None:
    """A child process: run the runner of consumer group ``group`` until ``stop`` is set."""
    logging.getLogger("cqrs.commands").setLevel(logging.ERROR)
    logging.getLogger("cqrs.projections").setLevel(logging.ERROR)
    engine = schema_engine(url, schema, pool_size=4)
    consumers = consumer_groups(build_bus())[group]
    runner = ProjectionRunner(engine, consumers, poll_interval=0.2, durable=durable)
    halt = threading.Event()

    def watch() -> None:
        stop.wait()
        halt.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        runner.run_forever(halt)
    finally:
        engine.dispose()


class _RunnerProcess:
    """A runner group in a spawned process, started and joined like a thread."""

    def __init__(self, url: str, schema: str, group: int, durable: bool = True) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._process = ctx.Process(
            target=_runner_main, args=(url, schema, group, self._stop, durable), daemon=True
        )

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()


def _runner_processes(engine: Engine, groups: int, durable: bool = True) -> list[Any]:
    url = engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return [_RunnerProcess(url, schema, g, durable) for g in range(groups)]


def _drain(engine: Engine, names: Sequence[str], timeout: float) -> float:
    """Wait until every consumer is at the head twice in a row; answers the seconds."""
    started = time.perf_counter()
    quiet = 0
    while time.perf_counter() - started < timeout:
        with engine.connect() as conn:
            behind = sum(int(b) for _, b, _ in conn.execute(LAG, {"names": list(names)}))
        quiet = quiet + 1 if behind == 0 else 0
        if quiet >= 2:
            break
        time.sleep(0.2)
    return time.perf_counter() - started


def _report(
    r: RateResult,
    written: Written,
    caught_up_all: float,
    load_before: tuple[float, float, float],
    out: TextIO,
) -> None:
    def emit(line: str = "") -> None:
        print(line, file=out, flush=True)

    emit(f"shop at {r.rate:g} orders/s: {r.orders} orders sent in {written.seconds:.1f}s "
         f"= {r.orders_per_second:.1f} orders/s achieved ({r.placed} placed, the rest refused "
         f"by rules; last order {written.late:.2f}s behind its schedule)")  # fmt: skip
    emit(f"load average before {load_before[0]:.2f}, at the end of the writes "
         f"{r.load[0]:.2f} / {r.load[1]:.2f} / {r.load[2]:.2f} "
         "(1/5/15 min, 2 cores shared)")  # fmt: skip
    emit(f"client CPU while writing: {r.cpu:.1f}s of this process "
         f"({r.cpu / max(r.orders, 1) * 1000:.1f} ms an order; writers, carriers"
         f"{'' if r.cpu_includes_runners else ' only, runners in their own processes'}"
         f"{', runners' if r.cpu_includes_runners else ''})")  # fmt: skip
    emit(f"consumers started and at the head of the setup's events {r.ready:.1f}s before "
         "the first order (the clock starts there)")  # fmt: skip
    emit(f"consumers at the head {r.caught_up:.1f}s after the last order "
         f"({caught_up_all:.1f}s with the carriers' last parcels)")  # fmt: skip
    emit()
    emit("lag per consumer during the writes "
         f"({len(next(iter(r.lags.events.values()), []))} samples):")  # fmt: skip
    emit(f"  {'consumer':22} {'events behind p50/p90/p99/max':>32} "
         f"{'seconds behind p50/p90/p99/max':>34}")  # fmt: skip
    for name in sorted(r.lags.events):
        ev, sec = r.lags.events[name], r.lags.seconds[name]
        e = "/".join(f"{percentile(ev, q):.0f}" for q in (0.5, 0.9, 0.99)) + f"/{max(ev)}"
        s = "/".join(f"{percentile(sec, q):.2f}" for q in (0.5, 0.9, 0.99)) + f"/{max(sec):.2f}"
        emit(f"  {name:22} {e:>32} {s:>34}")
    worst = max((percentile(s, 0.99) for s in r.lags.seconds.values()), default=0.0)
    emit(f"worst p99 seconds behind: {worst:.2f}s (target < 1 s)")
    emit()
    emit("end state:")
    for check in r.checks:
        emit(f"  {'ok  ' if check.ok else 'FAIL'} {check.name} ({check.detail})")
    for error in r.errors[:10]:
        emit(f"  error: {error}")
    emit("verified" if r.ok else "VERIFICATION FAILED")


@attrs.frozen
class CatchUp:
    batched: bool
    events: int  # events the consumers read through
    commands: int  # commands the process managers dispatched
    seconds: float
    cpu: float  # this process's CPU seconds (every thread)


def catch_up(url: str, orders: int, *, batched: bool, schema: str, seed: int = 42) -> CatchUp:
    """Write ``orders`` with no consumer running, then time the 12 consumers (in their
    runner groups) until all are at the head: wall and client CPU per dispatched command."""
    engine = migrate.fresh_schema(url, schema, pool_size=12, max_overflow=4)
    try:
        with engine.connect() as conn:
            migrate.upgrade(conn)
        bus = build_bus()
        plan = Workload.generate(orders, seed=seed)
        setup(engine, bus, plan)
        drive(engine, bus, plan, workers=4)
        groups = consumer_groups(bus, batched=batched)
        names = [p.name for g in groups for p in g]
        stop = threading.Event()
        runners = [ProjectionRunner(engine, g, poll_interval=0.05) for g in groups]
        threads = [threading.Thread(target=r.run_forever, args=(stop,)) for r in runners]
        started, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        try:
            _drain(engine, names, 1800)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        with engine.connect() as conn:
            after = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
            commands = conn.execute(
                text("SELECT count(*) FROM processed_commands WHERE command_id LIKE '%process:%'")
            ).scalar_one()
        return CatchUp(batched, int(after), int(commands), seconds, cpu)
    finally:
        engine.dispose()


def compare(url: str, orders: int, repeat: int, schema: str, out: TextIO = sys.stdout) -> None:
    """Interleaved A/B of the process managers' two paths (send, enqueue, send, ...)."""
    rows: list[CatchUp] = []
    for _ in range(repeat):
        for batched in (False, True):
            found = catch_up(url, orders, batched=batched, schema=schema)
            rows.append(found)
            print(
                f"  {'enqueue' if batched else 'send   '}: {found.events} events, "
                f"{found.commands} commands dispatched; consumers at the head in "
                f"{found.seconds:.1f}s ({found.commands / found.seconds:.0f} commands/s), "
                f"client CPU {found.cpu:.1f}s ({found.cpu / found.commands * 1000:.2f} ms a "
                f"command), load {os.getloadavg()[0]:.2f}",
                file=out, flush=True,
            )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shop_rate", description=__doc__)
    parser.add_argument("--rate", type=float, default=50, help="orders a second")
    parser.add_argument("--seconds", type=float, default=60, help="how long to write")
    parser.add_argument("--database-url", default=None, help="default: CQRS_DATABASE_URL")
    parser.add_argument("--schema", default="shop_rate", help="schema to (re)create and use")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between lag samples")
    parser.add_argument("--workers", type=int, default=4, help="writer threads")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--catch-up", type=int, default=0, metavar="ORDERS",
        help="instead: write ORDERS with no consumer, then time the consumers catching up, "
        "process managers sending each command alone vs in batches, interleaved",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=2, help="A/B rounds of --catch-up")
    parser.add_argument(
        "--runner-processes", action="store_true",
        help="each runner group in a process of its own (default: threads of this process, "
        "as make demo runs them)",
    )  # fmt: skip
    parser.add_argument(
        "--no-durable", action="store_true",
        help="runners commit read-model batches without waiting for the WAL flush "
        "(process managers stay durable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.getLogger("cqrs.commands").setLevel(logging.ERROR)
    logging.getLogger("cqrs.projections").setLevel(logging.ERROR)
    url = normalise_url(args.database_url) if args.database_url else database_url()
    if args.catch_up:
        compare(url, args.catch_up, args.repeat, args.schema)
        return 0
    result = run(url, rate=args.rate, seconds=args.seconds, schema=args.schema, seed=args.seed,
                 sample=args.sample, workers=args.workers,
                 processes=args.runner_processes, durable=not args.no_durable)  # fmt: skip
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
