"""ProcessManager and ProcessScenario against real PostgreSQL: one command per event, even when
a batch runs again (rolled back, connection killed mid-batch, checkpoint reset); a failing
command follows the failure policy into dead_letters."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import cqrs
from cqrs import (
    START,
    Aggregate,
    CommandBus,
    CommandOutcome,
    Event,
    EventStore,
    FailurePolicy,
    Position,
    ProcessManager,
    ProjectionContext,
    ProjectionRunner,
    RecordedEvent,
    UnitOfWork,
    applies,
    event,
)
from cqrs.errors import ProjectionError
from cqrs.projections import list_dead_letters, retry_dead_letters
from cqrs.testing import ProcessScenario


@event("pmtest.order.placed")
class OrderPlaced(Event):
    order_id: str
    amount: int


@event("pmtest.order.awaiting_payment")
class OrderAwaitingPayment(Event):
    order_id: str


@event("pmtest.payment.requested")
class PaymentRequested(Event):
    payment_id: str
    order_id: str
    amount: int


@event("pmtest.receipt.issued")
class ReceiptIssued(Event):
    order_id: str


class PaymentError(Exception):
    pass


RULES = {"min_amount": 1}


class Order(Aggregate):
    aggregate_type = "pmtest_order"
    status: str = "new"

    def place(self, amount: int) -> None:
        self.record(OrderPlaced(self.id, amount))

    def await_payment(self) -> None:
        self.record(OrderAwaitingPayment(self.id))

    @applies(OrderPlaced)
    def _placed(self, e: OrderPlaced) -> None:
        self.status = "placed"

    @applies(OrderAwaitingPayment)
    def _awaiting(self, e: OrderAwaitingPayment) -> None:
        self.status = "awaiting_payment"


class Payment(Aggregate):
    """No guard against a second request: a command run twice would append twice."""

    aggregate_type = "pmtest_payment"
    requests: int = 0

    def request(self, order_id: str, amount: int) -> None:
        if amount < RULES["min_amount"]:
            raise PaymentError(f"amount {amount} is below {RULES['min_amount']}")
        self.record(PaymentRequested(self.id, order_id, amount))

    @applies(PaymentRequested)
    def _requested(self, e: PaymentRequested) -> None:
        self.requests += 1


class Receipt(Aggregate):
    aggregate_type = "pmtest_receipt"

    def issue(self, order_id: str) -> None:
        self.record(ReceiptIssued(order_id))

    @applies(ReceiptIssued)
    def _issued(self, e: ReceiptIssued) -> None:
        pass


@attrs.frozen
class RequestPayment:
    order_id: str
    amount: int


@attrs.frozen
class AwaitPayment:
    order_id: str


@attrs.frozen
class IssueReceipt:
    order_id: str


def make_bus() -> CommandBus:
    bus = CommandBus()

    @bus.handles(RequestPayment)
    def _request(cmd: RequestPayment, uow: UnitOfWork) -> str:
        repo = uow.repository(Payment)
        pid = f"pay-{cmd.order_id}"
        payment = repo.get_or_none(pid) or repo.create(pid)
        payment.request(cmd.order_id, cmd.amount)
        return pid

    @bus.handles(AwaitPayment)
    def _await(cmd: AwaitPayment, uow: UnitOfWork) -> None:
        uow.repository(Order).get(cmd.order_id).await_payment()

    @bus.handles(IssueReceipt)
    def _receipt(cmd: IssueReceipt, uow: UnitOfWork) -> None:
        uow.repository(Receipt).create(f"receipt-{cmd.order_id}").issue(cmd.order_id)

    return bus


def payments(
    bus: CommandBus,
    outcomes: list[CommandOutcome[Any]] | None = None,
    *,
    batched: bool = False,
    **kwargs: Any,
) -> ProcessManager:
    """Order placed -> request its payment; payment requested -> the order awaits it.

    ``batched``: the handlers ``enqueue`` (the batch's commands run together at its end).
    """
    manager = ProcessManager("payments", bus, **kwargs)

    @manager.on(OrderPlaced)
    def _placed(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        command = RequestPayment(r.event.order_id, r.event.amount)
        if batched:
            manager.enqueue(ctx, r, command)
            return
        outcome = manager.send(ctx, r, command)
        if outcomes is not None:
            outcomes.append(outcome)

    @manager.on(PaymentRequested)
    def _requested(r: RecordedEvent[PaymentRequested], ctx: ProjectionContext) -> None:
        command = AwaitPayment(r.event.order_id)
        if batched:
            manager.enqueue(ctx, r, command)
        else:
            manager.send(ctx, r, command)

    return manager


@pytest.fixture
def engine(cqrs_engine: Engine) -> Iterator[Engine]:
    RULES["min_amount"] = 1
    yield cqrs_engine
    RULES["min_amount"] = 1


def place(engine: Engine, *orders: tuple[str, int]) -> None:
    with Session(engine) as session, session.begin():
        for order_id, amount in orders:
            EventStore().append(
                session, Order.stream_id_for(order_id), [OrderPlaced(order_id, amount)],
                stream_type=Order.aggregate_type,
            )  # fmt: skip


def caught_up(engine: Engine, manager: ProcessManager) -> bool:
    """Every shard's checkpoint is past the newest event (other sessions on a shared server
    may hold the read horizon back for a while: ``run_until_caught_up`` stops there)."""
    with engine.connect() as conn:
        head = EventStore().head(conn)
        rows = conn.execute(
            text(
                "SELECT transaction_id::text, global_position FROM checkpoints "
                "WHERE projection = :p"
            ),
            {"p": manager.name},
        ).all()
    return len(rows) == manager.shards and all(Position(int(x), p) >= head for x, p in rows)


def run(engine: Engine, manager: ProcessManager) -> int:
    """Run ``manager`` until it has handled every event in the log; the number handled."""
    runner = ProjectionRunner(engine, [manager], listen=False)
    deadline = time.monotonic() + 30
    total = 0
    try:
        while True:
            total += runner.run_until_caught_up(timeout=30)
            if caught_up(engine, manager):
                return total
            assert time.monotonic() < deadline, "the read horizon stayed held back for 30 s"
            time.sleep(0.02)
    finally:
        runner.close()


def log(engine: Engine) -> list[RecordedEvent[Event]]:
    found: list[RecordedEvent[Event]] = []
    after = START
    with engine.connect() as conn:
        while batch := EventStore().read_all(conn, after=after, limit=1000):
            found.extend(batch)
            after = batch[-1].position
    return found


def of_type(engine: Engine, cls: type[Event]) -> list[RecordedEvent[Event]]:
    return [r for r in log(engine) if isinstance(r.event, cls)]


def processed_commands(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT command_id FROM processed_commands ORDER BY 1")))


def test_is_public() -> None:
    assert cqrs.ProcessManager is ProcessManager
    assert "ProcessManager" in cqrs.projections.__all__


@pytest.mark.parametrize("batched", [False, True], ids=["send", "enqueue"])
def test_one_command_per_event_and_a_checkpoint_reset_dispatches_nothing(
    engine: Engine, batched: bool
) -> None:
    bus = make_bus()
    manager = payments(bus, batched=batched)
    place(engine, ("o-1", 5), ("o-2", 7), ("o-3", 9))
    assert run(engine, manager) == 6  # 3 OrderPlaced, then the 3 PaymentRequested they caused
    placed = {r.event.order_id: r for r in of_type(engine, OrderPlaced)}  # type: ignore[attr-defined]
    requested = of_type(engine, PaymentRequested)
    assert sorted(r.stream_id for r in requested) == [
        Payment.stream_id_for(f"pay-o-{i}") for i in (1, 2, 3)
    ]
    for r in requested:
        cause = placed[r.event.order_id]  # type: ignore[attr-defined]
        assert r.metadata["command_id"] == f"payments:{cause.event_id}"
        assert r.causation_id == f"payments:{cause.event_id}"
        assert r.correlation_id == str(cause.event_id)
    awaiting = of_type(engine, OrderAwaitingPayment)
    assert sorted(r.stream_id for r in awaiting) == [
        Order.stream_id_for(f"o-{i}") for i in (1, 2, 3)
    ]
    # the chain keeps one correlation id: OrderPlaced -> PaymentRequested -> OrderAwaitingPayment
    for r in awaiting:
        assert r.correlation_id == str(placed[r.event.order_id].event_id)  # type: ignore[attr-defined]
    assert len(processed_commands(engine)) == 6
    count = len(log(engine))

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM checkpoints WHERE projection = 'payments'"))
    outcomes: list[CommandOutcome[Any]] = []
    assert run(engine, payments(make_bus(), outcomes, batched=batched)) == 6  # all again...
    assert len(log(engine)) == count  # ...and every command was a repeat
    if not batched:
        assert [(o.replayed, o.recorded, o.result) for o in outcomes] == [
            (True, (), f"pay-o-{i}") for i in (1, 2, 3)
        ]
    assert len(processed_commands(engine)) == 6


@pytest.mark.parametrize("batched", [False, True], ids=["send", "enqueue"])
def test_a_batch_rolled_back_mid_way_is_retried_without_duplicates(
    engine: Engine, batched: bool
) -> None:
    """The batch dispatches o-1's command, then fails at o-2: everything rolls back (the
    command's events and its processed_commands row too); the retry dispatches each once."""
    manager = payments(make_bus(), batched=batched, policy=FailurePolicy(retries=2, backoff=0.0))
    calls: list[str] = []

    @manager.on(OrderPlaced)
    def _flaky(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        calls.append(r.event.order_id)
        if r.event.order_id == "o-2" and calls.count("o-2") == 1:
            raise RuntimeError("glitch after o-2's command was sent")

    place(engine, ("o-1", 5), ("o-2", 7), ("o-3", 9))
    run(engine, manager)
    assert calls.count("o-1") == 2 and calls.count("o-2") == 2  # the batch ran twice
    requested = of_type(engine, PaymentRequested)
    assert sorted(r.event.order_id for r in requested) == ["o-1", "o-2", "o-3"]  # type: ignore[attr-defined]
    assert len(of_type(engine, OrderAwaitingPayment)) == 3
    assert len(processed_commands(engine)) == 6
    assert list_dead_letters(engine, "payments") == []
    with engine.connect() as conn:
        error = conn.scalar(
            text("SELECT last_error FROM checkpoints WHERE projection = 'payments'")
        )
    assert error is None  # cleared by the successful retry


def test_a_connection_killed_mid_batch_dispatches_each_command_once(engine: Engine) -> None:
    """A crash between a command and the batch's commit: the database kills the runner's
    connection after o-1's command ran in the batch; the runner reconnects and repeats it."""
    manager = payments(make_bus())
    killed: list[int] = []

    @manager.on(OrderPlaced)
    def _crash(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        if r.event.order_id == "o-2" and not killed:
            conn = ctx.connection
            killed.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    place(engine, ("o-1", 5), ("o-2", 7))
    run(engine, manager)
    assert killed
    requested = of_type(engine, PaymentRequested)
    assert sorted(r.event.order_id for r in requested) == ["o-1", "o-2"]  # type: ignore[attr-defined]
    assert len(of_type(engine, OrderAwaitingPayment)) == 2
    assert len(processed_commands(engine)) == 4
    assert list_dead_letters(engine, "payments") == []


@pytest.mark.parametrize("batched", [False, True], ids=["send", "enqueue"])
def test_a_failing_command_is_parked_by_the_failure_policy(engine: Engine, batched: bool) -> None:
    manager = payments(make_bus(), batched=batched, policy=FailurePolicy(retries=1, backoff=0.0))
    place(engine, ("o-1", 5), ("o-bad", 0), ("o-3", 9))
    run(engine, manager)
    letters = list_dead_letters(engine, "payments")
    assert [(d.stream_id, d.event_type, d.version) for d in letters] == [
        (Order.stream_id_for("o-bad"), "pmtest.order.placed", 1)
    ]
    assert "PaymentError: amount 0 is below 1" in letters[0].error
    requested = of_type(engine, PaymentRequested)
    assert sorted(r.event.order_id for r in requested) == ["o-1", "o-3"]  # type: ignore[attr-defined]
    placed = {r.event.order_id: r for r in of_type(engine, OrderPlaced)}  # type: ignore[attr-defined]
    assert f"payments:{placed['o-bad'].event_id}" not in processed_commands(engine)

    RULES["min_amount"] = 0  # the rule is fixed
    assert retry_dead_letters(engine, manager, stream_id=Order.stream_id_for("o-bad")) == 1
    assert list_dead_letters(engine, "payments") == []
    run(engine, manager)  # the retry's PaymentRequested reaches the manager too
    requested = of_type(engine, PaymentRequested)
    assert sorted(r.event.order_id for r in requested) == ["o-1", "o-3", "o-bad"]  # type: ignore[attr-defined]
    assert sorted(r.event.order_id for r in of_type(engine, OrderAwaitingPayment)) == [  # type: ignore[attr-defined]
        "o-1", "o-3", "o-bad",
    ]  # fmt: skip


def test_a_connection_killed_inside_the_command_batch_dispatches_each_command_once(
    engine: Engine,
) -> None:
    """The queued commands run at the end of the runner batch: the database kills the
    connection in the middle of them (o-1's command handled, o-2's running); the runner
    reconnects, runs the batch again, and every command lands once."""
    bus = make_bus()
    killed: list[int] = []
    handled: list[str] = []
    request = bus.handler_for(RequestPayment)
    killer = CommandBus()

    @killer.handles(RequestPayment)
    def _request(cmd: RequestPayment, uow: UnitOfWork) -> str:
        handled.append(cmd.order_id)
        if cmd.order_id == "o-2" and not killed:
            conn = uow.session.connection()
            killed.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        result: str = request(cmd, uow)
        return result

    killer.register(AwaitPayment, bus.handler_for(AwaitPayment))
    manager = payments(killer, batched=True)
    place(engine, ("o-1", 5), ("o-2", 7), ("o-3", 9))
    run(engine, manager)
    assert killed and handled.count("o-1") >= 2  # the batch ran again after the kill
    requested = of_type(engine, PaymentRequested)
    assert sorted(r.event.order_id for r in requested) == ["o-1", "o-2", "o-3"]  # type: ignore[attr-defined]
    assert len(of_type(engine, OrderAwaitingPayment)) == 3
    assert len(processed_commands(engine)) == 6
    assert list_dead_letters(engine, "payments") == []


def test_enqueued_commands_on_one_aggregate_apply_in_event_order(engine: Engine) -> None:
    bus = make_bus()
    manager = ProcessManager("ledger", bus, batch_size=100)
    batches: list[int] = []

    @manager.on(OrderPlaced)
    def _placed(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        manager.enqueue(ctx, r, RequestPayment("all", r.event.amount))

    place(engine, *[(f"o-{i}", i) for i in range(1, 9)])
    runner = ProjectionRunner(
        engine, [manager], listen=False, on_batch=lambda t, o: batches.append(o.applied)
    )
    try:
        runner.run_until_caught_up(timeout=30)
    finally:
        runner.close()
    assert 8 in batches  # the eight commands ran in one batch
    requested = of_type(engine, PaymentRequested)
    assert [r.event.amount for r in requested] == list(range(1, 9))  # type: ignore[attr-defined]
    assert {r.stream_id for r in requested} == {Payment.stream_id_for("pay-all")}
    assert [r.version for r in requested] == list(range(1, 9))


def test_a_fresh_transaction_conflict_reruns_the_batch_without_counting_a_failure(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch's transaction takes its id, then another writer appends to the stream the
    queued command appends to and commits: AppendOrderConflict. The runner runs the batch
    again at once (no failure logged, none counted by the policy) and it succeeds."""
    bus = make_bus()
    manager = ProcessManager("racing", bus, policy=FailurePolicy(retries=0, backoff=0.0))
    raced: list[str] = []

    @manager.on(OrderPlaced)
    def _placed(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        if not raced:
            ctx.connection.execute(text("SELECT pg_current_xact_id()"))  # the id, taken now
            with Session(engine) as elsewhere:
                bus.execute(RequestPayment(r.event.order_id, 1), elsewhere)
            raced.append(r.event.order_id)
        manager.enqueue(ctx, r, RequestPayment(r.event.order_id, r.event.amount))

    place(engine, ("o-1", 5))
    with caplog.at_level(logging.DEBUG, logger="cqrs.projections"):
        run(engine, manager)
    assert raced == ["o-1"]
    assert any("running the batch again" in m for m in caplog.messages)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    amounts = [r.event.amount for r in of_type(engine, PaymentRequested)]  # type: ignore[attr-defined]
    assert amounts == [1, 5]  # the other writer's, then the manager's, once
    assert [c for c in processed_commands(engine) if c.startswith("racing:")] != []
    assert list_dead_letters(engine, "racing") == []


def test_enqueue_outside_a_batch_is_refused(engine: Engine) -> None:
    manager = payments(make_bus(), batched=True)
    place(engine, ("o-1", 5))
    cause = of_type(engine, OrderPlaced)[0]
    with pytest.raises(ProjectionError, match="enqueue"):
        manager.enqueue(None, cause, AwaitPayment("o-1"))  # type: ignore[arg-type]


def test_two_commands_for_one_event_need_keys(engine: Engine) -> None:
    bus = make_bus()
    unkeyed = ProcessManager("unkeyed", bus)

    @unkeyed.on(OrderPlaced)
    def _two(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        unkeyed.send(ctx, r, RequestPayment(r.event.order_id, r.event.amount))
        unkeyed.send(ctx, r, IssueReceipt(r.event.order_id))

    (
        ProcessScenario(unkeyed, engine)
        .when(Order, "o-1", OrderPlaced("o-1", 5))
        .then_raises(ProjectionError, match="pass key=")
    )
    assert of_type(engine, PaymentRequested) == []  # the batch rolled back

    keyed = ProcessManager("keyed", bus)

    @keyed.on(OrderPlaced)
    def _keyed(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        keyed.send(ctx, r, RequestPayment(r.event.order_id, r.event.amount))
        keyed.send(ctx, r, IssueReceipt(r.event.order_id), key="receipt")

    recorded = (
        ProcessScenario(keyed, engine)
        .when(Order, "o-2", OrderPlaced("o-2", 5))
        .then(PaymentRequested("pay-o-2", "o-2", 5), ReceiptIssued("o-2"))
    )
    cause = of_type(engine, OrderPlaced)[-1]
    assert [r.metadata["command_id"] for r in recorded] == [
        f"keyed:{cause.event_id}", f"keyed:{cause.event_id}:receipt",
    ]  # fmt: skip
    with pytest.raises(ProjectionError, match="non-empty string"):
        keyed.command_id(cause, key=" ")


# -- ProcessScenario ---------------------------------------------------------------------


def test_scenario_given_is_history_when_is_what_the_manager_reacts_to(engine: Engine) -> None:
    recorded = (
        ProcessScenario(payments(make_bus()), engine)
        .given(Order, "o-old", OrderPlaced("o-old", 3))  # seen before: no command now
        .given(Order, "o-1", OrderPlaced("o-1", 5))
        .when(Order, "o-2", OrderPlaced("o-2", 8))
        .then(PaymentRequested("pay-o-2", "o-2", 8), OrderAwaitingPayment("o-2"))
    )
    assert [r.stream_id for r in recorded] == [
        Payment.stream_id_for("pay-o-2"), Order.stream_id_for("o-2"),
    ]  # fmt: skip
    assert all(r.metadata["command_id"].startswith("payments:") for r in recorded)


def test_scenario_reports_different_events(engine: Engine) -> None:
    scenario = ProcessScenario(payments(make_bus()), engine).when(
        Order, "o-1", OrderPlaced("o-1", 5)
    )
    with pytest.raises(AssertionError, match="events differ") as info:
        scenario.then(PaymentRequested("pay-o-1", "o-1", 6))
    assert "OrderAwaitingPayment" in str(info.value)


def test_scenario_then_raises_with_a_failing_command(engine: Engine) -> None:
    error = (
        ProcessScenario(payments(make_bus()), engine)
        .when(Order, "o-1", OrderPlaced("o-1", 0))
        .then_raises(PaymentError, match="below 1")
    )
    assert isinstance(error, PaymentError)
    assert of_type(engine, PaymentRequested) == []


def test_scenario_catches_a_manager_that_is_not_idempotent(engine: Engine) -> None:
    """Dispatching with the bus directly gives every run a fresh command id: a replay repeats
    the command, and ``then`` says so."""
    bus = make_bus()
    careless = ProcessManager("careless", bus)

    @careless.on(OrderPlaced)
    def _placed(r: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        session = ctx.session
        session.connection()
        bus.dispatch(RequestPayment(r.event.order_id, r.event.amount), session)

    scenario = ProcessScenario(careless, engine).when(Order, "o-1", OrderPlaced("o-1", 5))
    with pytest.raises(AssertionError, match="appended again"):
        scenario.then(PaymentRequested("pay-o-1", "o-1", 5))


def test_scenario_needs_a_when_step(engine: Engine) -> None:
    scenario = ProcessScenario(payments(make_bus()), engine).given(
        Order, "o-1", OrderPlaced("o-1", 5)
    )
    with pytest.raises(AssertionError, match="no when"):
        scenario.then()


def test_scenario_with_a_sharded_manager(engine: Engine) -> None:
    manager = payments(make_bus(), shards=3)
    (
        ProcessScenario(manager, engine)
        .when(Order, "o-1", OrderPlaced("o-1", 5))
        .then(PaymentRequested("pay-o-1", "o-1", 5), OrderAwaitingPayment("o-1"))
    )
