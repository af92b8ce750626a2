"""The command bus and unit of work against a real PostgreSQL."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from commands_domain import (
    Counter,
    Increment,
    Incremented,
    Order,
    OrderError,
    OrderPlaced,
    OrderShipped,
    PlaceOrder,
    PlaceTwoThenFail,
    Receipt,
    ShipOrder,
    Unrouted,
    make_bus,
)
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import (
    CommandBus,
    CommandOutcome,
    Event,
    EventStore,
    RecordedEvent,
    Repository,
    RetryOnConflict,
    UnitOfWork,
)
from cqrs.commands import CommandMetrics, LoggingMiddleware, MetricsHook
from cqrs.errors import (
    CommandError,
    ConcurrencyError,
    HandlerNotFound,
    InvalidInput,
    SerializationError,
    StreamNotFound,
    UnhandledEvent,
)
from cqrs.testing import CommandScenario


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_dispatch_creates_and_updates_an_aggregate(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session:
        receipt = bus.dispatch(PlaceOrder("o-1", "c-1", Decimal("12.50")), session)
        assert receipt == Receipt("o-1", Decimal("12.50"))
        assert not session.in_transaction()  # the bus began and committed its own
        bus.dispatch(ShipOrder("o-1"), session)
    with Session(cqrs_engine) as session:
        order = Repository(Order, session).get("o-1")
        assert (order.status, order.total, order.version) == ("shipped", Decimal("12.50"), 2)
        info = EventStore().stream_info(session, "order-o-1")
        assert info is not None and info.stream_type == "order"


def test_domain_error_writes_nothing(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session:
        with pytest.raises(StreamNotFound, match="order-missing"):
            bus.dispatch(ShipOrder("missing"), session)
        bus.dispatch(PlaceOrder("o-2", "c-1", Decimal(1)), session)
        bus.dispatch(ShipOrder("o-2"), session)
        with pytest.raises(OrderError, match="cannot ship"):
            bus.dispatch(ShipOrder("o-2"), session)
    assert _count(cqrs_engine, "SELECT count(*) FROM events") == 2


def test_events_carry_command_correlation_and_causation(cqrs_engine: Engine) -> None:
    bus = make_bus()
    store = EventStore()
    with Session(cqrs_engine) as session:
        first = bus.execute(
            PlaceOrder("o-3", "c-1", Decimal(3)), session, correlation_id="request-42"
        )
        placed = first.recorded[0]
        assert placed.metadata["command_id"] == first.command_id
        assert placed.causation_id == first.command_id
        assert placed.correlation_id == "request-42"
        second = bus.execute(ShipOrder("o-3"), session, caused_by=placed)
        with session.begin():
            stored = store.read_stream(session, "order-o-3")
    shipped = stored[1]
    assert shipped.correlation_id == "request-42"  # the conversation goes on
    assert shipped.causation_id == second.command_id != first.command_id
    assert shipped.metadata["command_id"] == second.command_id
    assert stored[0].metadata == placed.metadata


def test_idempotent_command_returns_first_result_and_appends_nothing(
    cqrs_engine: Engine,
) -> None:
    bus = make_bus()
    command = PlaceOrder("o-4", "c-1", Decimal("7.25"), command_id="cmd-4")
    with Session(cqrs_engine) as session:
        first = bus.execute(command, session)
        again = bus.execute(command, session)
        by_kwarg = bus.execute(PlaceOrder("o-4", "c-9", Decimal(99)), session, command_id="cmd-4")
    assert first.result == again.result == by_kwarg.result == Receipt("o-4", Decimal("7.25"))
    assert isinstance(again.result.total, Decimal)  # structured back through the return type
    assert (first.replayed, again.replayed) == (False, True)
    assert again.recorded == () and len(first.recorded) == 1
    assert _count(cqrs_engine, "SELECT count(*) FROM events") == 1
    assert _count(cqrs_engine, "SELECT count(*) FROM processed_commands") == 1


def test_command_id_reused_by_another_command_type_is_refused(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session:
        bus.dispatch(PlaceOrder("o-5", "c-1", Decimal(1)), session, command_id="shared")
        with pytest.raises(InvalidInput, match="already used by a PlaceOrder"):
            bus.dispatch(Increment("k-1"), session, command_id="shared")
        with pytest.raises(InvalidInput, match="non-empty"):
            bus.dispatch(Increment("k-1"), session, command_id=" ")
    assert _count(cqrs_engine, "SELECT count(*) FROM streams WHERE stream_id = 'counter-k-1'") == 0


def test_unit_of_work_is_all_or_nothing(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with (
        Session(cqrs_engine) as session,
        pytest.raises(OrderError, match="after touching two aggregates"),
    ):
        bus.dispatch(PlaceTwoThenFail("o-6", "k-6"), session)
    assert _count(cqrs_engine, "SELECT count(*) FROM events") == 0
    assert _count(cqrs_engine, "SELECT count(*) FROM streams") == 0


def test_unit_of_work_appends_every_touched_aggregate(cqrs_engine: Engine) -> None:
    with Session(cqrs_engine) as session, session.begin():
        uow = UnitOfWork(session, metadata={"correlation_id": "x"})
        uow.repository(Order).create("o-7").place("c-1", Decimal(2))
        uow.repository(Counter).create("k-7").increment(5)
        assert uow.repository(Order) is uow.repository(Order)
        results = uow.flush()
        with pytest.raises(CommandError, match="already flushed"):
            uow.flush()
    assert [r.stream_id for r in results] == ["order-o-7", "counter-k-7"]
    assert [r.event for r in uow.recorded] == [
        OrderPlaced("o-7", "c-1", Decimal(2)),
        Incremented(5),
    ]
    assert all(r.correlation_id == "x" for r in uow.recorded)


def test_missing_handler_raises_handler_not_found(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session:
        with pytest.raises(HandlerNotFound, match="Unrouted") as info:
            bus.dispatch(Unrouted(), session)
        assert not session.in_transaction()
    assert "@bus.handles" in str(info.value)


def test_one_handler_per_command_type() -> None:
    bus = make_bus()
    with pytest.raises(CommandError, match="already has a handler"):

        @bus.handles(PlaceOrder)
        def again(cmd: PlaceOrder, uow: UnitOfWork) -> None:
            raise AssertionError("never registered")


def test_unhandled_stored_event_names_aggregate_and_event(cqrs_engine: Engine) -> None:
    with Session(cqrs_engine) as session, session.begin():
        EventStore().append(session, "counter-k-8", [OrderShipped("o-8")])
        with pytest.raises(UnhandledEvent) as info:
            Repository(Counter, session).get("k-8")
    assert "Counter" in str(info.value) and "ctest.order.shipped" in str(info.value)


def test_conflict_is_retried_with_a_fresh_load(cqrs_engine: Engine) -> None:
    """Another writer commits between this command's load and its append."""
    interfered = 0

    def interfering_bus(retry: RetryOnConflict | None) -> CommandBus:
        bus = CommandBus(middleware=[retry] if retry else [])

        @bus.handles(Increment)
        def increment(cmd: Increment, uow: UnitOfWork) -> int:
            nonlocal interfered
            counter = uow.repository(Counter).get(cmd.counter_id)
            if interfered < 1:
                interfered += 1
                with Session(cqrs_engine) as other, other.begin():
                    EventStore().append(other, counter.stream_id, [Incremented(100)])
            counter.increment(cmd.by)
            return counter.version

        return bus

    waits: list[float] = []
    with Session(cqrs_engine) as session:
        make_bus().dispatch(Increment("k-9"), session)
        with pytest.raises(ConcurrencyError, match="expected 1, found version 2"):
            interfering_bus(None).dispatch(Increment("k-9"), session)
        interfered = 0
        outcome = interfering_bus(RetryOnConflict(attempts=3)).execute(
            Increment("k-9"), session, sleep=waits.append
        )
        counter = Repository(Counter, session).get("k-9")
    assert outcome.attempts == 2 and len(waits) == 1
    assert outcome.result == 4 and counter.count == 1 + 100 + 100 + 1


def test_retry_gives_up_after_its_attempts(cqrs_engine: Engine) -> None:
    bus = CommandBus(middleware=[RetryOnConflict(attempts=3, base_delay=0)])
    runs = 0

    @bus.handles(Increment)
    def always_conflicts(cmd: Increment, uow: UnitOfWork) -> None:
        nonlocal runs
        runs += 1
        raise ConcurrencyError("counter-x", expected=1, actual=2)

    with Session(cqrs_engine) as session, pytest.raises(ConcurrencyError):
        bus.dispatch(Increment("x"), session)
    assert runs == 3


def test_dispatch_joins_an_open_transaction(cqrs_engine: Engine) -> None:
    bus = make_bus()
    with Session(cqrs_engine) as session:
        with session.begin():
            bus.dispatch(PlaceOrder("o-10", "c-1", Decimal(1)), session)
            with pytest.raises(OrderError):  # rolled back to its savepoint only
                bus.dispatch(PlaceTwoThenFail("o-11", "k-11"), session)
            bus.dispatch(PlaceOrder("o-12", "c-1", Decimal(1)), session)
        session.begin()
        bus.dispatch(PlaceOrder("o-13", "c-1", Decimal(1)), session)
        session.rollback()  # the caller decides: o-13 is gone
    with cqrs_engine.connect() as conn:
        streams = conn.execute(text("SELECT stream_id FROM streams ORDER BY 1")).scalars().all()
    assert streams == ["order-o-10", "order-o-12"]


class TotalsProjection:
    """An inline projection keeping a per-customer total in a plain table."""

    name = "customer_totals"

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on

    def apply_inline(self, session: Session, events: Sequence[RecordedEvent[Event]]) -> None:
        for recorded in events:
            e = recorded.event
            if isinstance(e, OrderPlaced):
                if e.order_id == self.fail_on:
                    raise RuntimeError("projection failed")
                session.execute(
                    text(
                        "INSERT INTO customer_totals VALUES (:c, :t) ON CONFLICT (customer_id) "
                        "DO UPDATE SET total = customer_totals.total + EXCLUDED.total"
                    ),
                    {"c": e.customer_id, "t": e.total},
                )


def test_inline_projections_commit_with_the_events(cqrs_engine: Engine) -> None:
    with cqrs_engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE customer_totals (customer_id text PRIMARY KEY, total numeric)")
        )
    bus = make_bus(inline_projections=[TotalsProjection(fail_on="o-bad")])
    with Session(cqrs_engine) as session:
        bus.dispatch(PlaceOrder("o-14", "c-1", Decimal("1.5")), session)
        bus.dispatch(PlaceOrder("o-15", "c-1", Decimal("2")), session)
        with pytest.raises(RuntimeError, match="projection failed"):
            bus.dispatch(PlaceOrder("o-bad", "c-1", Decimal(100)), session)
        bus.dispatch(ShipOrder("o-14"), session)  # no OrderPlaced: projection writes nothing
    with cqrs_engine.connect() as conn:
        total = conn.execute(text("SELECT total FROM customer_totals")).scalar_one()
    assert total == Decimal("3.5")
    assert _count(cqrs_engine, "SELECT count(*) FROM streams WHERE stream_id = 'order-o-bad'") == 0


def test_metrics_hook_and_logging(cqrs_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[CommandMetrics] = []
    bus = make_bus(middleware=[LoggingMiddleware(), MetricsHook(seen.append), RetryOnConflict()])
    caplog.set_level(logging.DEBUG, logger="cqrs.commands")
    with Session(cqrs_engine) as session:
        bus.dispatch(PlaceOrder("o-16", "c-1", Decimal(1)), session, command_id="m-1")
        bus.dispatch(PlaceOrder("o-16", "c-1", Decimal(1)), session, command_id="m-1")
        bus.dispatch(ShipOrder("o-16"), session)
        with pytest.raises(OrderError):
            bus.dispatch(ShipOrder("o-16"), session)  # already shipped
    statuses = [(m.command_type, m.status) for m in seen]
    assert statuses == [
        ("PlaceOrder", "ok"),
        ("PlaceOrder", "replayed"),
        ("ShipOrder", "ok"),
        ("ShipOrder", "error"),
    ]
    assert [m.events for m in seen] == [1, 0, 1, 0]
    assert seen[3].error == "OrderError" and all(m.seconds >= 0 for m in seen)
    messages = [r.getMessage() for r in caplog.records]
    assert any("PlaceOrder m-1 handled" in m and "(replayed)" in m for m in messages)
    assert any("ShipOrder" in m and "failed" in m and "OrderError" in m for m in messages)


def test_command_scenario_for_handlers(cqrs_engine: Engine) -> None:
    bus = make_bus()
    (
        CommandScenario(bus, cqrs_engine)
        .given(Order, "o-20", OrderPlaced("o-20", "c-1", Decimal(4)))
        .when(ShipOrder("o-20"))
        .then(OrderShipped("o-20"))
    )
    scenario = CommandScenario(bus, cqrs_engine).when(ShipOrder("o-21"))
    scenario.then_raises(StreamNotFound, match="order-o-21")
    with pytest.raises(AssertionError, match="events differ"):
        (
            CommandScenario(bus, cqrs_engine)
            .when(PlaceOrder("o-22", "c-1", Decimal(1)))
            .then(OrderShipped("o-22"))
        )


def test_conflict_retry_inside_the_callers_transaction(cqrs_engine: Engine) -> None:
    """Joined to an open transaction, a retry rolls back to the savepoint and reloads."""
    bus = CommandBus(middleware=[RetryOnConflict(attempts=2, base_delay=0)])
    runs = 0

    @bus.handles(Increment)
    def increment(cmd: Increment, uow: UnitOfWork) -> int:
        nonlocal runs
        runs += 1
        counter = uow.repository(Counter).get(cmd.counter_id)
        if runs == 1:
            with Session(cqrs_engine) as other, other.begin():
                EventStore().append(other, counter.stream_id, [Incremented(100)])
        counter.increment(cmd.by)
        return counter.version

    with Session(cqrs_engine) as session:
        make_bus().dispatch(Increment("k-12"), session)
        with session.begin():
            outcome = bus.execute(Increment("k-12"), session)
            assert outcome.attempts == 2 and outcome.result == 3
    with Session(cqrs_engine) as session, session.begin():
        assert Repository(Counter, session).get("k-12").count == 102


def test_concurrent_repeats_of_one_command_run_it_once(cqrs_engine: Engine) -> None:
    """The second sender blocks on the claimed id, then answers the first result."""
    bus = CommandBus()
    blocked_seen = threading.Event()

    @bus.handles(PlaceOrder)
    def place(cmd: PlaceOrder, uow: UnitOfWork) -> str:
        uow.repository(Order).create(cmd.order_id).place(cmd.customer_id, cmd.total)
        started.set()
        with cqrs_engine.connect() as probe:
            for _ in range(400):  # bounded: wait until the other sender waits on our row
                waiting = probe.execute(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                ).scalar_one()
                if waiting:
                    blocked_seen.set()
                    break
                time.sleep(0.025)
        return cmd.order_id

    started = threading.Event()
    command = PlaceOrder("o-30", "c-1", Decimal(1), command_id="twice")
    outcomes: list[CommandOutcome[Any]] = []

    def send() -> None:
        with Session(cqrs_engine) as session:
            outcomes.append(bus.execute(command, session))

    first = threading.Thread(target=send)
    first.start()
    assert started.wait(timeout=30)
    second = threading.Thread(target=send)
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)
    assert blocked_seen.is_set()
    assert sorted(o.replayed for o in outcomes) == [False, True]
    assert [o.result for o in outcomes] == ["o-30", "o-30"]
    assert _count(cqrs_engine, "SELECT count(*) FROM events") == 1


def test_idempotent_result_that_is_not_json_rolls_the_command_back(cqrs_engine: Engine) -> None:
    bus = CommandBus()

    @bus.handles(PlaceOrder)
    def place(cmd: PlaceOrder, uow: UnitOfWork) -> object:
        uow.repository(Order).create(cmd.order_id).place(cmd.customer_id, cmd.total)
        return object()

    with Session(cqrs_engine) as session:
        with pytest.raises(SerializationError, match="JSON-friendly"):
            bus.dispatch(PlaceOrder("o-40", "c-1", Decimal(1), command_id="c-40"), session)
        bus.dispatch(PlaceOrder("o-41", "c-1", Decimal(1)), session)  # no id: result not kept
    assert _count(cqrs_engine, "SELECT count(*) FROM processed_commands") == 0
    assert _count(cqrs_engine, "SELECT count(*) FROM events") == 1
