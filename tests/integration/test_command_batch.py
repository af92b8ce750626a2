"""CommandBus.execute_batch against real PostgreSQL: many commands as one unit of work,
in order on a shared aggregate, a domain error failing one command only, repeats answered
from processed_commands, and conflicting writers (a concurrent append, the same batch in
two transactions at once) resolved without applying anything twice."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import attrs
import pytest
from commands_domain import (
    Counter,
    Increment,
    Order,
    OrderError,
    PlaceOrder,
    PlaceTwoThenFail,
    Receipt,
    ShipOrder,
    SnappedOrder,
    make_bus,
)
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import CommandBus, CommandOutcome, EventStore, Repository, UnitOfWork
from cqrs.aggregates.snapshots import SnapshotStore
from cqrs.commands import BatchCommand
from cqrs.errors import (
    AggregateError,
    ConcurrencyError,
    InvalidInput,
    StreamAlreadyExists,
    StreamNotFound,
)


@attrs.frozen
class AddItem:
    order_id: str
    sku: str


def _ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT command_id FROM processed_commands ORDER BY 1")))


def _stream(engine: Engine, stream_id: str) -> list[Any]:
    with engine.connect() as conn:
        return EventStore().read_stream(conn, stream_id)


def _ok(result: CommandOutcome[Any] | Exception) -> CommandOutcome[Any]:
    assert isinstance(result, CommandOutcome), result
    return result


def test_many_commands_on_one_aggregate_apply_in_order(cqrs_engine: Engine) -> None:
    bus = make_bus()
    batch = [BatchCommand(Increment("k-1", by=i), command_id=f"inc-{i}") for i in range(1, 11)]
    with Session(cqrs_engine) as session:
        results = bus.execute_batch(batch, session)
    assert [_ok(r).result for r in results] == list(range(1, 11))  # each saw the ones before
    assert [len(_ok(r).recorded) for r in results] == [1] * 10
    events = _stream(cqrs_engine, Counter.stream_id_for("k-1"))
    assert [r.event.by for r in events] == list(range(1, 11))
    # every event carries the command that recorded it
    assert [r.metadata["command_id"] for r in events] == [f"inc-{i}" for i in range(1, 11)]
    assert [_ok(r).recorded[0].event_id for r in results] == [r.event_id for r in events]
    assert _ids(cqrs_engine) == sorted(f"inc-{i}" for i in range(1, 11))

    # the same batch again: every command is a repeat answering its first result
    with Session(cqrs_engine) as session:
        again = bus.execute_batch(batch, session)
    assert [(_ok(r).replayed, _ok(r).result, _ok(r).recorded) for r in again] == [
        (True, i, ()) for i in range(1, 11)
    ]
    assert len(_stream(cqrs_engine, Counter.stream_id_for("k-1"))) == 10


def test_a_domain_error_fails_that_command_only(cqrs_engine: Engine) -> None:
    bus = make_bus()
    batch: list[Any] = [
        BatchCommand(PlaceOrder("o-1", "c-1", Decimal(5)), command_id="place-1"),
        BatchCommand(ShipOrder("o-404")),  # no such order
        BatchCommand(PlaceOrder("o-1", "c-2", Decimal(6)), command_id="place-1b"),  # exists
        ShipOrder("o-1"),  # sees the order placed earlier in the batch
        BatchCommand(ShipOrder("o-1"), command_id="ship-twice"),  # already shipped
        BatchCommand(PlaceTwoThenFail("o-9", "k-9"), command_id="two-then-fail"),
        BatchCommand(Increment("k-2"), command_id="inc-k-2"),
    ]
    with Session(cqrs_engine) as session:
        results = bus.execute_batch(batch, session)
    assert [type(r).__name__ for r in results] == [
        "CommandOutcome", "StreamNotFound", "StreamAlreadyExists", "CommandOutcome",
        "OrderError", "OrderError", "CommandOutcome",
    ]  # fmt: skip
    assert _ok(results[0]).result == Receipt("o-1", Decimal(5))
    assert isinstance(results[2], StreamAlreadyExists)
    # nothing of the failed commands was written, nor their ids
    assert [type(r.event).__name__ for r in _stream(cqrs_engine, "order-o-1")] == [
        "OrderPlaced", "OrderShipped",
    ]  # fmt: skip
    for absent in ("order-o-9", "counter-k-9", "order-o-404"):
        with pytest.raises(StreamNotFound):
            _stream(cqrs_engine, absent)
    assert _ids(cqrs_engine) == ["inc-k-2", "place-1"]
    # the single-command path says the same about each failed command
    with Session(cqrs_engine) as session:
        with pytest.raises(StreamNotFound):
            bus.execute(ShipOrder("o-404"), session)
        with pytest.raises(StreamAlreadyExists):
            bus.execute(PlaceOrder("o-1", "c-2", Decimal(6)), session, command_id="place-1b")
        with pytest.raises(OrderError, match="is shipped"):
            bus.execute(ShipOrder("o-1"), session, command_id="ship-twice")


def test_bad_batches_are_refused_before_anything_runs(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session:
        with pytest.raises(InvalidInput, match="twice in one batch"):
            bus.execute_batch(
                [BatchCommand(Increment("k"), command_id="x"),
                 BatchCommand(Increment("k"), command_id="x")],
                session,
            )  # fmt: skip
        with pytest.raises(InvalidInput, match="list of commands"):
            bus.execute_batch(Increment("k"), session)  # type: ignore[arg-type]
        assert bus.execute_batch([], session) == []
    assert _ids(cqrs_engine) == []


def test_an_id_used_by_another_command_type_fails_that_command(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session:
        bus.execute(Increment("k-1"), session, command_id="shared")
        results = bus.execute_batch(
            [BatchCommand(PlaceOrder("o-1", "c", Decimal(1)), command_id="shared"),
             BatchCommand(Increment("k-1"), command_id="fresh")],
            session,
        )  # fmt: skip
    assert isinstance(results[0], InvalidInput)
    assert _ok(results[1]).result == 2


def test_a_concurrent_writer_makes_the_batch_run_again_without_doubles(
    cqrs_engine: Engine,
) -> None:
    """Another transaction appends to the counter after the batch loaded it: the batch's
    append conflicts, the batch rolls back and runs again on the new version."""
    bus = make_bus()
    other = make_bus()
    with Session(cqrs_engine) as session:
        bus.execute(Increment("k-1"), session)
    runs: list[int] = []
    racing = CommandBus()

    @racing.handles(Increment)
    def _racing(cmd: Increment, uow: UnitOfWork) -> int:
        counter = uow.repository(Counter).get(cmd.counter_id)
        runs.append(counter.version)
        if len(runs) == 1:  # another writer moves the stream under the first run
            with Session(cqrs_engine) as elsewhere:
                other.execute(Increment(cmd.counter_id, by=100), elsewhere)
        counter.increment(cmd.by)
        return counter.version

    with Session(cqrs_engine) as session:
        results = racing.execute_batch(
            [BatchCommand(Increment("k-1", by=7), command_id="raced")],
            session,
            sleep=lambda s: None,
        )
    outcome = _ok(results[0])
    assert runs == [1, 2]  # ran twice: on version 1, then on the writer's version 2
    assert (outcome.result, outcome.attempts, outcome.replayed) == (3, 2, False)
    assert [r.event.by for r in _stream(cqrs_engine, "counter-k-1")] == [1, 100, 7]
    assert _ids(cqrs_engine) == ["raced"]


def test_the_same_batch_in_two_transactions_at_once_applies_once(cqrs_engine: Engine) -> None:
    """Both transactions load before either appends (a barrier in the handler): one commits,
    the other conflicts, runs again and finds every command id processed."""
    barrier = threading.Barrier(2, timeout=30)
    first_runs: set[str] = set()
    bus = CommandBus()
    lock = threading.Lock()

    @bus.handles(Increment)
    def _increment(cmd: Increment, uow: UnitOfWork) -> int:
        counters = uow.repository(Counter)
        counter = counters.get_or_none(cmd.counter_id) or counters.create(cmd.counter_id)
        with lock:
            meet = threading.current_thread().name not in first_runs
            first_runs.add(threading.current_thread().name)
        if meet:
            barrier.wait()
        counter.increment(cmd.by)
        return counter.version

    batch = [BatchCommand(Increment(f"k-{i % 3}"), command_id=f"twice-{i}") for i in range(9)]
    answers: dict[str, list[Any]] = {}

    def run(name: str) -> None:
        with Session(cqrs_engine) as session:
            answers[name] = bus.execute_batch(batch, session, sleep=lambda s: None)

    threads = [threading.Thread(target=run, args=(f"t{n}",), name=f"t{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(answers) == {"t0", "t1"}
    replayed = {name: [_ok(r).replayed for r in rs] for name, rs in answers.items()}
    assert sorted(map(tuple, replayed.values())) == [(False,) * 9, (True,) * 9]
    assert [_ok(a).result for a in answers["t0"]] == [_ok(b).result for b in answers["t1"]]
    for k in range(3):  # three commands on each counter, each applied once
        events = _stream(cqrs_engine, Counter.stream_id_for(f"k-{k}"))
        assert [r.metadata["command_id"] for r in events] == [
            f"twice-{k + 3 * j}" for j in range(3)
        ]
    assert len(_ids(cqrs_engine)) == 9


def test_a_batch_inside_the_callers_transaction_rolls_back_with_it(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session, session.begin():
        results = bus.execute_batch([BatchCommand(Increment("k-1"), command_id="in-tx")], session)
        assert _ok(results[0]).result == 1
        session.rollback()
    assert _ids(cqrs_engine) == []
    with pytest.raises(StreamNotFound):
        _stream(cqrs_engine, "counter-k-1")


def test_create_twice_in_one_command_is_refused(cqrs_engine: Engine) -> None:
    bus = CommandBus()

    @bus.handles(Increment)
    def _twice(cmd: Increment, uow: UnitOfWork) -> None:
        uow.repository(Order).create("o-1")
        uow.repository(Order).create("o-1")

    with Session(cqrs_engine) as session:
        (result,) = bus.execute_batch([Increment("x")], session)
    assert isinstance(result, AggregateError)


def test_conflicts_give_up_after_the_attempts(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session:
        bus.execute(Increment("k-1"), session)
    always = CommandBus()

    @always.handles(Increment)
    def _moved(cmd: Increment, uow: UnitOfWork) -> None:
        counter = uow.repository(Counter).get(cmd.counter_id)
        with Session(cqrs_engine) as elsewhere:
            bus.execute(Increment(cmd.counter_id), elsewhere)
        counter.increment(1)

    with Session(cqrs_engine) as session, pytest.raises(ConcurrencyError):
        always.execute_batch([Increment("k-1")], session, attempts=2, sleep=lambda s: None)
    assert len(_stream(cqrs_engine, "counter-k-1")) == 3  # the other writer's two only


def test_aggregates_with_snapshots_load_and_snapshot_in_a_batch(cqrs_engine: Engine) -> None:
    """A class with ``snapshot_every`` loads through its snapshot and is snapshotted when one
    is due, as through the single-command path."""
    bus = CommandBus()

    @bus.handles(AddItem)
    def _add(cmd: AddItem, uow: UnitOfWork) -> int:
        orders = uow.repository(SnappedOrder)
        order = orders.get_or_none(cmd.order_id) or orders.create(cmd.order_id)
        order.add_item(cmd.sku, 1)
        return order.version

    with Session(cqrs_engine) as session:
        first = bus.execute_batch([AddItem("s-1", f"sku-{i}") for i in range(4)], session)
        assert [_ok(r).result for r in first] == [1, 2, 3, 4]
        second = bus.execute_batch([AddItem("s-1", "sku-9"), AddItem("s-2", "sku-0")], session)
        assert [_ok(r).result for r in second] == [5, 1]
    with cqrs_engine.connect() as conn:
        snapshots = conn.execute(text("SELECT count(*) FROM snapshots")).scalar_one()
        loaded = SnapshotStore().load(conn, SnappedOrder, "s-1")
    assert snapshots >= 1 and loaded is not None and loaded.version >= 3
    with Session(cqrs_engine) as session, session.begin():
        order = Repository(SnappedOrder, session).get("s-1")
    assert order.items == {"sku-0": 1, "sku-1": 1, "sku-2": 1, "sku-3": 1, "sku-9": 1}


@attrs.frozen
class AddThenFail:
    order_id: str
    sku: str


def test_a_failed_command_leaves_no_trace_on_an_aggregate_later_commands_use(
    cqrs_engine: Engine,
) -> None:
    bus = CommandBus()

    @bus.handles(AddItem)
    def _add(cmd: AddItem, uow: UnitOfWork) -> dict[str, int]:
        order = uow.repository(Order).get(cmd.order_id)
        order.add_item(cmd.sku, 1)
        return dict(order.items)

    @bus.handles(AddThenFail)
    def _add_then_fail(cmd: AddThenFail, uow: UnitOfWork) -> None:
        uow.repository(Order).get(cmd.order_id).add_item(cmd.sku, 5)
        raise OrderError("changed the order, then refused")

    with Session(cqrs_engine) as session:
        make_bus().execute(PlaceOrder("o-1", "c-1", Decimal(1)), session)
        results = bus.execute_batch(
            [AddItem("o-1", "a"), AddThenFail("o-1", "bad"), AddItem("o-1", "b"),
             AddThenFail("o-1", "a"), AddItem("o-1", "a")],
            session,
        )  # fmt: skip
    assert [r if isinstance(r, Exception) else _ok(r).result for r in results][::2] == [
        {"a": 1}, {"a": 1, "b": 1}, {"a": 2, "b": 1},
    ]  # fmt: skip
    assert all(isinstance(r, OrderError) for r in results[1::2])
    events = _stream(cqrs_engine, "order-o-1")
    assert [(r.event.sku, r.version) for r in events[1:]] == [("a", 2), ("b", 3), ("a", 4)]
