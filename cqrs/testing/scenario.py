"""Public: given / when / then scenarios for aggregates and command handlers.

For an aggregate, in memory (no database)::

    >>> (AggregateScenario(Order, "o-1")                        # doctest: +SKIP
    ...     .given(OrderPlaced("o-1", "c-1", Decimal(5)))
    ...     .when(lambda order: order.ship())
    ...     .then(OrderShipped("o-1")))

For a handler, through the bus against a real database (``cqrs_engine``)::

    >>> (CommandScenario(bus, cqrs_engine)                      # doctest: +SKIP
    ...     .given(Order, "o-1", OrderPlaced("o-1", "c-1", Decimal(5)))
    ...     .when(ShipOrder("o-1"))
    ...     .then(OrderShipped("o-1")))

``then_raises(SomeError)`` checks that the action or command raised, and that
nothing was recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cqrs.aggregates.aggregate import Aggregate
from cqrs.commands.bus import CommandBus
from cqrs.commands.context import CommandOutcome
from cqrs.events.model import Event

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
