"""Internal: reading the shop's log and running its consumers, for the example's tests.

(The process managers' given / when / then is the toolkit's
``cqrs.testing.ProcessScenario``.)::

    before = head(engine)
    run_consumers(engine, *all_consumers(build_bus()))
    appended = read_after(engine, before)
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, text

from cqrs import START, Event, EventStore, Position, RecordedEvent
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


def caught_up(engine: Engine, *projections: Projection) -> bool:
    """Every shard of every projection has its checkpoint past the newest event."""
    with engine.connect() as conn:
        newest = EventStore().head(conn)
        for projection in projections:
            rows = conn.execute(
                text("SELECT transaction_id::text, global_position FROM checkpoints "
                     "WHERE projection = :p"),
                {"p": projection.name},
            ).all()  # fmt: skip
            if len(rows) != projection.shards or any(Position(int(x), p) < newest for x, p in rows):
                return False
    return True


def run_consumers(engine: Engine, *projections: Projection) -> int:
    """Run until every projection has handled the whole log; the number of events handled.

    ``run_until_caught_up`` stops at the read horizon, which another session on a shared
    server may hold back for a while: go on until the checkpoints are past the newest event.
    """
    runner = ProjectionRunner(engine, list(projections), listen=False)
    deadline = time.monotonic() + 30
    total = 0
    try:
        while True:
            total += runner.run_until_caught_up(timeout=30)
            if caught_up(engine, *projections):
                return total
            assert time.monotonic() < deadline, "the read horizon stayed held back for 30 s"
            time.sleep(0.02)
    finally:
        runner.close()
