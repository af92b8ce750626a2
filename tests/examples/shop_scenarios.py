"""Internal: given / when / then for the shop's process managers, against a real database.

``ProcessScenario(engine, manager)``: given events already in some streams,
when the process manager runs over the log (``ProjectionRunner``), then it
appended exactly these events (through the commands it dispatched)::

    ProcessScenario(engine, stock).given(Order, "o-1", PLACED).then(StockReserved(...), ...)
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cqrs import START, Aggregate, Event, EventStore, Position, RecordedEvent
from cqrs.projections import Projection, ProjectionRunner


def read_after(engine: Engine, after: Position) -> list[RecordedEvent[Event]]:
    """Every event after ``after``, in log order."""
    store = EventStore()
    found: list[RecordedEvent[Event]] = []
    with engine.connect() as conn:
        while batch := store.read_all(conn, after=after, limit=1000):
            found.extend(batch)
            after = batch[-1].position
    return found


def head(engine: Engine) -> Position:
    events = read_after(engine, START)
    return events[-1].position if events else START


def run_consumers(engine: Engine, *projections: Projection) -> int:
    runner = ProjectionRunner(engine, list(projections), listen=False)
    try:
        return runner.run_until_caught_up(max_wait=30)
    finally:
        runner.close()


class ProcessScenario:
    """Given streams, when ``manager`` catches up, then the events its commands appended."""

    def __init__(self, engine: Engine, manager: Projection) -> None:
        self.engine = engine
        self.manager = manager
        self._given: list[tuple[type[Aggregate], str, list[Event]]] = []

    def given(self, aggregate: type[Aggregate], id: str, *events: Event) -> ProcessScenario:
        self._given.append((aggregate, id, list(events)))
        return self

    def run(self) -> list[RecordedEvent[Event]]:
        store = EventStore()
        with Session(self.engine) as session, session.begin():
            for aggregate, id, events in self._given:
                store.append(
                    session, aggregate.stream_id_for(id), events,
                    stream_type=aggregate.aggregate_type,
                )  # fmt: skip
        before = head(self.engine)
        run_consumers(self.engine, self.manager)
        return read_after(self.engine, before)

    def then(self, *expected: Event) -> list[RecordedEvent[Event]]:
        recorded = self.run()
        actual = [r.event for r in recorded]
        assert actual == list(expected), f"expected {list(expected)}\nactual {actual}"
        return recorded
