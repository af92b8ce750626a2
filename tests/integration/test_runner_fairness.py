"""Shards of one runner take turns: a projection with a long backlog does not keep the
others of its runner waiting until it has drained (its batches are always full)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cqrs import Event, EventStore, ProjectionContext, ProjectionRunner, RecordedEvent, event
from cqrs.projections import Projection
from cqrs.projections.batch import Outcome, Target


@event("fairtest.tick")
class Tick(Event):
    n: int


def test_a_runner_gives_each_projection_one_batch_per_turn(cqrs_engine: Engine) -> None:
    seen: dict[str, list[int]] = {"first": [], "second": []}
    projections = []
    for name in seen:
        projection = Projection(name, batch_size=2)

        @projection.on(Tick)
        def _tick(r: RecordedEvent[Tick], ctx: ProjectionContext, name: str = name) -> None:
            seen[name].append(r.event.n)

        projections.append(projection)
    with Session(cqrs_engine) as session, session.begin():
        EventStore().append(session, "tick-1", [Tick(n) for n in range(8)])
    batches: list[tuple[str, int]] = []

    def record(target: Target, outcome: Outcome) -> None:
        batches.append((target.projection.name, outcome.applied))

    runner = ProjectionRunner(cqrs_engine, projections, listen=False, on_batch=record)
    try:
        runner.run_until_caught_up(timeout=30)
    finally:
        runner.close()
    assert seen == {"first": list(range(8)), "second": list(range(8))}
    names = [name for name, applied in batches if applied]
    assert names[:8] == ["first", "second"] * 4  # turns, not "first" four times in a row
