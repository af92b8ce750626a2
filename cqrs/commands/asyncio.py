"""Public: the command side under asyncio, through SQLAlchemy's ``AsyncSession``.

The same bus, handlers, repositories and unit of work run inside
``AsyncSession.run_sync`` (SQLAlchemy's greenlet bridge), so there is one
copy of the logic; retry back-off waits with ``asyncio.sleep`` and never
blocks the event loop::

    >>> async def place() -> Order:
    ...     async with AsyncSession(async_engine) as session:
    ...         await dispatch_async(bus, PlaceOrder("o-1", "c-1", Decimal(5)), session)
    ...         return await load_async(session, Order, "o-1")
    >>> asyncio.run(place()).status
    'placed'

Use the ``postgresql+psycopg://`` URL with ``create_async_engine``. The bridge
needs the ``greenlet`` package: ``pip install 'sqlalchemy-cqrs[asyncio]'``.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from cqrs.aggregates.aggregate import Aggregate
from cqrs.aggregates.repository import Repository
from cqrs.commands.bus import CommandBus
from cqrs.commands.context import CommandOutcome
from cqrs.errors import ConfigurationError
from cqrs.events.model import Event, RecordedEvent
from cqrs.store.interface import EventStoreProtocol

try:
    import greenlet  # noqa: F401  # SQLAlchemy's AsyncSession.run_sync needs it
    from sqlalchemy.ext.asyncio import AsyncSession
except ImportError:
    raise ConfigurationError(
        "cqrs.commands.asyncio runs commands through SQLAlchemy's greenlet bridge, and the "
        "greenlet package is not installed; pip install 'sqlalchemy-cqrs[asyncio]'"
    ) from None

A = TypeVar("A", bound=Aggregate)

try:  # SQLAlchemy 2.1 name, then 2.0's
    from sqlalchemy.util import await_ as _await
except ImportError:  # pragma: no cover
    from sqlalchemy.util import await_only as _await


def _greenlet_sleep(seconds: float) -> None:
    _await(asyncio.sleep(seconds))


async def execute_async(
    bus: CommandBus,
    command: object,
    session: AsyncSession,
    *,
    command_id: str | None = None,
    correlation_id: str | None = None,
    caused_by: RecordedEvent[Event] | None = None,
) -> CommandOutcome[Any]:
    """:meth:`CommandBus.execute` for an ``AsyncSession``."""

    def run(sync_session: Session) -> CommandOutcome[Any]:
        return bus.execute(
            command, sync_session, command_id=command_id, correlation_id=correlation_id,
            caused_by=caused_by, sleep=_greenlet_sleep,
        )  # fmt: skip

    return await session.run_sync(run)


async def dispatch_async(
    bus: CommandBus,
    command: object,
    session: AsyncSession,
    *,
    command_id: str | None = None,
    correlation_id: str | None = None,
    caused_by: RecordedEvent[Event] | None = None,
) -> Any:
    """:meth:`CommandBus.dispatch` for an ``AsyncSession``: the handler's result."""
    outcome = await execute_async(
        bus, command, session, command_id=command_id, correlation_id=correlation_id,
        caused_by=caused_by,
    )  # fmt: skip
    return outcome.result


async def load_async(
    session: AsyncSession, aggregate: type[A], id: str, *, store: EventStoreProtocol | None = None
) -> A:
    """``Repository(aggregate, session).get(id)`` for an ``AsyncSession`` (typed as ``A``)."""

    def run(sync_session: Session) -> A:
        return Repository(aggregate, sync_session, store=store).get(id)

    return await session.run_sync(run)
