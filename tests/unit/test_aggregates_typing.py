"""Static typing of the command side: checked by ``mypy --strict`` on this file.

At run time the ``assert_type`` calls are no-ops; the test makes sure the
file stays importable and its functions runnable.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any, assert_type

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cqrs import (
    Aggregate,
    CommandBus,
    CommandOutcome,
    Event,
    EventRegistry,
    UnitOfWork,
    applies,
    event,
)
from cqrs.aggregates import Repository
from cqrs.commands.asyncio import load_async
from cqrs.testing import AggregateScenario

registry = EventRegistry()


@event("typing.ticked", registry=registry)
class Ticked(Event):
    n: int


class Clock(Aggregate):
    ticks: int = 0

    def tick(self) -> None:
        self.record(Ticked(n=self.ticks + 1))

    @applies(Ticked)
    def _ticked(self, e: Ticked) -> None:
        assert_type(e.n, int)
        self.ticks = e.n


def typed_repository(session: Session) -> None:
    repo = Repository(Clock, session)
    assert_type(repo, Repository[Clock])
    assert_type(repo.get("c"), Clock)
    assert_type(repo.get_or_none("c"), Clock | None)
    assert_type(repo.create("c").ticks, int)


def typed_unit_of_work(uow: UnitOfWork) -> None:
    assert_type(uow.repository(Clock), Repository[Clock])
    assert_type(uow.repository(Clock).get("c"), Clock)


def typed_bus(bus: CommandBus, session: Session) -> None:
    @bus.handles(int)
    def handle(cmd: int, uow: UnitOfWork) -> str:
        return str(cmd)

    assert_type(handle, Callable[[int, UnitOfWork], str])
    assert_type(bus.execute(1, session), CommandOutcome[Any])


async def typed_async(session: AsyncSession) -> None:
    assert_type(await load_async(session, Clock, "c"), Clock)


def test_typed_helpers_run_in_memory() -> None:
    assert_type(Clock.from_events("c", [Ticked(1)]), Clock)
    clock = AggregateScenario(Clock).given(Ticked(1)).when(Clock.tick).then(Ticked(2))
    assert_type(clock, Clock)
    assert clock.ticks == 2


def test_this_file_type_checks() -> None:
    """``mypy --strict`` agrees with every ``assert_type`` above."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", __file__],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
