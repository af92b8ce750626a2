"""Public: given / when / then scenarios for aggregates, command handlers, process managers.

For an aggregate, in memory (no database)::

    >>> order = (AggregateScenario(Order, "o-1")
    ...     .given(OrderPlaced("o-1", "c-1", Decimal(5)))
    ...     .when(lambda order: order.ship())
    ...     .then(OrderShipped("o-1")))

For a handler, through the bus against a real database (``cqrs_engine``)::

    >>> outcome = (CommandScenario(bus, cqrs_engine)
    ...     .given(Order, "o-1", OrderPlaced("o-1", "c-1", Decimal(5)))
    ...     .when(ShipOrder("o-1"))
    ...     .then(OrderShipped("o-1")))

For a process manager, through its batches against a real database: given
streams, when these events happen, then its commands appended these events::

    >>> appended = (ProcessScenario(shipping, cqrs_engine)
    ...     .given(Order, "o-1", OrderPlaced("o-1", "c-1", Decimal(5)))
    ...     .when(Payment, "p-1", PaymentCaptured("p-1", "o-1", Decimal(5)))
    ...     .then(OrderPaid("o-1"), ShipmentCreated("s-o-1", "o-1")))

``then_raises(SomeError)`` checks that the action or command raised, and that
nothing was recorded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cqrs.aggregates.aggregate import Aggregate
from cqrs.commands.bus import CommandBus
from cqrs.commands.context import CommandOutcome
from cqrs.events.model import START, Event, Position, RecordedEvent
from cqrs.projections import sql as projection_sql
from cqrs.projections.batch import Target, run_batch
from cqrs.projections.process_manager import ProcessManager
from cqrs.store.event_store import EventStore

A = TypeVar("A", bound=Aggregate)
X = TypeVar("X", bound=BaseException)


def _show(events: Sequence[Event]) -> str:
    return "\n".join(f"  {i + 1}. {e!r}" for i, e in enumerate(events)) or "  (none)"


def _compare(expected: Sequence[Event], actual: Sequence[Event]) -> None:
    if list(expected) != list(actual):
        raise AssertionError(
            f"events differ\nexpected:\n{_show(expected)}\nactual:\n{_show(actual)}"
        )


def _check_raised(error: BaseException | None, exc_type: type[X], match: str | None) -> X:
    if error is None:
        raise AssertionError(f"expected {exc_type.__name__}, but nothing was raised")
    if not isinstance(error, exc_type):
        raise AssertionError(
            f"expected {exc_type.__name__}, got {type(error).__name__}: {error}"
        ) from error
    if match is not None and not re.search(match, str(error)):
        raise AssertionError(f"{exc_type.__name__} {str(error)!r} does not match {match!r}")
    return error


class AggregateScenario(Generic[A]):
    """Given past events, when a command method runs, then these events (or an error)."""

    def __init__(self, aggregate: type[A], id: str = "test-1") -> None:
        self.aggregate_type = aggregate
        self.id = id
        self._given: list[Event] = []
        self._action: Callable[[A], object] | None = None

    def given(self, *events: Event) -> AggregateScenario[A]:
        """The aggregate's history."""
        self._given.extend(events)
        return self

    def when(self, action: Callable[[A], object]) -> AggregateScenario[A]:
        """What to do to the rebuilt aggregate (call a command method)."""
        self._action = action
        return self

    def _run(self) -> tuple[A, BaseException | None]:
        if self._action is None:
            raise AssertionError("scenario has no when(...) step")
        aggregate = self.aggregate_type.from_events(self.id, self._given)
        try:
            self._action(aggregate)
        except Exception as exc:
            return aggregate, exc
        return aggregate, None

    def then(self, *events: Event) -> A:
        """Assert the action recorded exactly ``events``; answer the aggregate."""
        aggregate, error = self._run()
        if error is not None:
            raise AssertionError(f"the action raised {type(error).__name__}: {error}") from error
        _compare(events, aggregate.pending_events)
        return aggregate

    def then_raises(self, exc_type: type[X], match: str | None = None) -> X:
        """Assert the action raised ``exc_type`` (message matching ``match``)."""
        _, error = self._run()
        return _check_raised(error, exc_type, match)


class CommandScenario:
    """Given streams, when a command is dispatched, then these events (or an error).

    Runs against a real database through ``engine`` (use the ``cqrs_engine``
    fixture): the given events are appended, the command goes through the
    bus with its middleware, and the events it appended are compared.
    """

    def __init__(self, bus: CommandBus, engine: Engine) -> None:
        self.bus = bus
        self.engine = engine
        self._given: list[tuple[type[Aggregate], str, list[Event]]] = []
        self._command: object = None
        self._kwargs: dict[str, Any] = {}

    def given(self, aggregate: type[Aggregate], id: str, *events: Event) -> CommandScenario:
        """Events already in the stream of ``aggregate`` ``id``."""
        self._given.append((aggregate, id, list(events)))
        return self

    def when(self, command: object, **dispatch_kwargs: Any) -> CommandScenario:
        """The command to dispatch (keyword arguments go to ``CommandBus.execute``)."""
        self._command = command
        self._kwargs = dispatch_kwargs
        return self

    def _run(self) -> tuple[CommandOutcome[Any] | None, BaseException | None]:
        if self._command is None:
            raise AssertionError("scenario has no when(...) step")
        with Session(self.engine) as session:
            with session.begin():
                for aggregate, id, events in self._given:
                    self.bus.store.append(
                        session, aggregate.stream_id_for(id), events,
                        stream_type=aggregate.aggregate_type,
                    )  # fmt: skip
            try:
                return self.bus.execute(self._command, session, **self._kwargs), None
            except Exception as exc:
                return None, exc

    def then(self, *events: Event) -> CommandOutcome[Any]:
        """Assert the command appended exactly ``events`` (in order); answer the outcome."""
        outcome, error = self._run()
        if error is not None:
            raise AssertionError(f"the command raised {type(error).__name__}: {error}") from error
        assert outcome is not None
        _compare(events, [r.event for r in outcome.recorded])
        return outcome

    def then_raises(self, exc_type: type[X], match: str | None = None) -> X:
        """Assert the command raised ``exc_type``; nothing it did was committed."""
        _, error = self._run()
        return _check_raised(error, exc_type, match)


Steps = list[tuple[type[Aggregate], str, list[Event]]]


class ProcessScenario:
    """Given streams, when events happen, then the events the manager's commands appended.

    Runs against a real database through ``engine`` (use the ``cqrs_engine``
    fixture). The given events are history: the manager's checkpoint starts
    after them (after everything already in the log), so it does not react to
    them. The when events are appended next, then the manager runs batch after
    batch (the runner's own batch transaction, without its failure policy: an
    error propagates) until it has caught up, reacting to the events its own
    commands append too. ``then``
    compares everything appended after the when events, then replays the when
    events once more (as after a checkpoint reset) and checks that nothing more
    is appended: the commands are idempotent. ``timeout`` bounds the wait for
    a read horizon held back by a transaction left open elsewhere.
    """

    max_batches = 200

    def __init__(self, manager: ProcessManager, engine: Engine, *, timeout: float = 30.0) -> None:
        self.manager = manager
        self.engine = engine
        self.timeout = timeout
        self._given: Steps = []
        self._when: Steps = []
        self._store = EventStore(registry=manager.registry)

    def given(self, aggregate: type[Aggregate], id: str, *events: Event) -> ProcessScenario:
        """Events already in the stream of ``aggregate`` ``id`` (the manager has seen them)."""
        self._given.append((aggregate, id, list(events)))
        return self

    def when(self, aggregate: type[Aggregate], id: str, *events: Event) -> ProcessScenario:
        """Events appended now to the stream of ``aggregate`` ``id``: the manager reacts."""
        self._when.append((aggregate, id, list(events)))
        return self

    def _append(self, steps: Steps, after: Position) -> Position:
        """Append ``steps`` in one transaction; the position of the last event."""
        with Session(self.engine) as session, session.begin():
            for aggregate, id, events in steps:
                result = self.manager.bus.store.append(
                    session, aggregate.stream_id_for(id), events,
                    stream_type=aggregate.aggregate_type,
                )  # fmt: skip
                if result.recorded:
                    after = result.recorded[-1].position
        return after

    def _move_checkpoints(self, position: Position) -> None:
        with self.engine.begin() as conn:
            for shard in range(self.manager.shards):
                conn.execute(
                    projection_sql.SET_CHECKPOINT,
                    {
                        "p": self.manager.name, "s": shard,
                        "nx": str(position.transaction_id), "np": position.global_position,
                    },
                )  # fmt: skip

    def _catch_up(self) -> None:
        """Run the manager's batches until its checkpoints are past the newest event."""
        name = self.manager.name
        deadline = time.monotonic() + self.timeout
        batches = 0
        with self.engine.connect() as conn:
            while True:
                processed, behind = 0, False
                for shard in range(self.manager.shards):
                    outcome = run_batch(conn, self._store, Target(self.manager, shard))
                    processed += outcome.processed
                    with conn.begin():
                        head = self._store.head(conn)
                    behind = behind or not outcome.locked or outcome.checkpoint < head
                batches += 1
                if not behind and processed == 0:
                    return
                if batches > self.max_batches:
                    raise AssertionError(
                        f"process manager {name!r} was still busy after {self.max_batches} "
                        "batches: do its commands cause events that cause them again?"
                    )
                if processed == 0:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"process manager {name!r} did not catch up in {self.timeout} s: "
                            "a transaction left open holds the read horizon back"
                        )
                    time.sleep(0.02)

    def _read_after(self, after: Position) -> list[RecordedEvent[Event]]:
        found: list[RecordedEvent[Event]] = []
        with self.engine.connect() as conn:
            while batch := self._store.read_all(conn, after=after, limit=1000):
                found.extend(batch)
                after = batch[-1].position
        return found

    def _run(self) -> tuple[Position, list[RecordedEvent[Event]], BaseException | None]:
        if not self._when:
            raise AssertionError("scenario has no when(...) step")
        self._append(self._given, START)
        started = self._store_head()  # everything in the log so far is history
        self._move_checkpoints(started)
        last = self._append(self._when, started)
        try:
            self._catch_up()
        except AssertionError:
            raise
        except Exception as exc:
            return started, [], exc
        return started, self._read_after(last), None

    def then(self, *events: Event) -> list[RecordedEvent[Event]]:
        """Assert the commands appended exactly ``events`` (in order), and only once.

        Answers the appended events (metadata included: ``command_id``,
        ``correlation_id``, ``causation_id``).
        """
        started, recorded, error = self._run()
        if error is not None:
            raise AssertionError(
                f"the process manager raised {type(error).__name__}: {error}"
            ) from error
        _compare(events, [r.event for r in recorded])
        end = recorded[-1].position if recorded else self._store_head()
        self._move_checkpoints(started)
        try:
            self._catch_up()
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(
                f"replaying the when events raised {type(exc).__name__}: {exc}"
            ) from exc
        again = [r.event for r in self._read_after(end)]
        if again:
            raise AssertionError(
                f"replaying the when events appended again:\n{_show(again)}\n"
                "dispatch with ProcessManager.send, whose command ids come from event ids"
            )
        return recorded

    def then_raises(self, exc_type: type[X], match: str | None = None) -> X:
        """Assert a handler (or a command it sent) raised ``exc_type``; its batch rolled back."""
        _, _, error = self._run()
        return _check_raised(error, exc_type, match)

    def _store_head(self) -> Position:
        with self.engine.connect() as conn:
            return self._store.head(conn)
