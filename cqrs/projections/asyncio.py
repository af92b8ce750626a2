"""Public: read-your-writes under asyncio: ``wait_for_async``.

``wait_for`` for an ``AsyncEngine``: it polls the projection's checkpoints with
``asyncio.sleep`` between reads, so the event loop serves other requests while
one waits, and it takes a pooled connection only for each read::

    outcome = await execute_async(bus, PlaceOrder(...), session)
    token = str(outcome.recorded[-1].position)          # what the client carries back
    await wait_for_async(async_engine, summary, token, timeout=2.0)  # or ReadModelTimeout

The projection runner itself is sync code: run it as its own process
(``cqrs projections run``) or in a thread (``asyncio.to_thread``) on a sync
engine, never on this ``AsyncEngine`` (``docs/guides/asyncio.md``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from cqrs.binds import asyncio_ext
from cqrs.errors import ConfigurationError, ReadModelTimeout
from cqrs.events.model import Position
from cqrs.projections.declarative import Projection
from cqrs.projections.status import CHECKPOINTS, passed, timed_out, wait_target

if TYPE_CHECKING:  # imported on first use: `import cqrs` must not need greenlet
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["wait_for_async"]


async def wait_for_async(
    bind: AsyncEngine | AsyncConnection,
    projection: Projection | str,
    position: Position | str,
    *,
    timeout: float = 5.0,
    shards: int | None = None,
    interval: float = 0.005,
    max_interval: float = 0.05,
) -> None:
    """Wait, without blocking the event loop, until every shard of ``projection`` has
    passed ``position`` (a ``Position`` or its ``str()`` token).

    Polls every ``interval`` seconds at first, backing off to ``max_interval``
    while the projection stays behind. Raises :class:`~cqrs.errors.ReadModelTimeout`
    after ``timeout`` seconds, naming the session that holds the read horizon back
    when one does. Cancelling the task stops the wait.

    >>> # not run: in a coroutine (a doctest cannot await)
    >>> await wait_for_async(async_engine, "order_summary", "812:4411")  # doctest: +SKIP
    """
    ext = asyncio_ext("cqrs.wait_for_async")
    if not isinstance(bind, ext.AsyncEngine | ext.AsyncConnection):
        raise ConfigurationError(
            f"wait_for_async takes an AsyncEngine or an AsyncConnection, got "
            f"{type(bind).__name__}; for a sync Engine or Connection use cqrs.wait_for"
        )
    name, target, count = wait_target(projection, position, shards)
    deadline = time.monotonic() + timeout
    pause = interval
    while True:
        if isinstance(bind, ext.AsyncEngine):
            async with bind.connect() as conn:
                if await _passed(conn, name, target, count, deadline, timeout):
                    return
        elif await _passed(bind, name, target, count, deadline, timeout):
            return
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(max_interval, pause * 2)


async def _passed(
    conn: AsyncConnection,
    name: str,
    target: Position,
    count: int,
    deadline: float,
    timeout: float,
) -> bool:
    """One read of the checkpoints (in the caller's transaction, else in one of its
    own); raises the timeout once ``deadline`` has passed."""
    if conn.in_transaction():
        rows = (await conn.execute(CHECKPOINTS, {"p": name})).all()
    else:
        async with conn.begin():
            rows = (await conn.execute(CHECKPOINTS, {"p": name})).all()
    done, reached = passed(rows, target, count)
    if not done and time.monotonic() >= deadline:
        raise await _timed_out(conn, name, target, reached, timeout)
    return done


async def _timed_out(
    conn: AsyncConnection, name: str, target: Position, reached: Position | None, timeout: float
) -> ReadModelTimeout:
    def diagnose(sync_conn: Connection) -> ReadModelTimeout:
        return timed_out(sync_conn, name, target, reached, timeout)

    return await conn.run_sync(diagnose)
