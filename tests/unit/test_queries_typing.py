"""Static typing of the query side: checked by ``mypy --strict`` on this file.

At run time the ``assert_type`` calls are no-ops; the test makes sure the
file stays importable and type-checks.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import assert_type

import attrs
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cqrs import AsyncQueryBus, Query, QueryBus, QueryHandlers


@attrs.frozen
class Answer(Query[int]):
    n: int


handlers = QueryHandlers()


@handlers.handles(Answer)
def sync_answer(q: Answer, session: Session) -> int:
    return q.n


@QueryHandlers().handles(Answer)  # one handler per query type and registry
async def async_answer(q: Answer, session: AsyncSession) -> int:
    return q.n


assert_type(sync_answer, Callable[[Answer, Session], int])
assert_type(async_answer, Callable[[Answer, AsyncSession], Awaitable[int]])


def typed_sync_bus(bus: QueryBus) -> None:
    assert_type(bus.ask(Answer(1)), int)


async def typed_async_bus(bus: AsyncQueryBus) -> None:
    assert_type(await bus.ask(Answer(1), after="1:1", wait_for="p", timeout=1.0), int)


def test_this_file_type_checks() -> None:
    """``mypy --strict`` agrees with every ``assert_type`` above."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", __file__],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
