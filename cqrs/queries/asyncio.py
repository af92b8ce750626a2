"""Public: ``AsyncQueryBus``, the query side under asyncio.

Same queries, same handler registry, same read-only transactions and
read-your-writes as ``QueryBus``, on an ``AsyncEngine``; waiting for a
projection never blocks the event loop (``wait_for_async`` polls with
``asyncio.sleep``), so other requests go on meanwhile::

    handlers = QueryHandlers()                      # declared once, at import time

    @handlers.handles(OrderStatus)
    def order_status(q: OrderStatus, session: Session) -> str | None:   # sync: both buses
        return session.scalar(select(OrderSummary.status).where(...))

    queries = AsyncQueryBus(create_async_engine(url), handlers=handlers)
    status = await queries.ask(OrderStatus("o-1"), after=token, wait_for=summary, timeout=2.0)

A ``def`` handler gets a ``Session`` and runs through ``AsyncSession.run_sync``
(SQLAlchemy's greenlet bridge: one function serves the sync bus too); an
``async def`` handler gets the ``AsyncSession`` itself. Needs the ``greenlet``
package: ``pip install 'sqlalchemy-cqrs[asyncio]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import text
from sqlalchemy.orm import Session

from cqrs.binds import asyncio_ext
from cqrs.errors import ConfigurationError
from cqrs.events.model import Position
from cqrs.projections.asyncio import wait_for_async
from cqrs.projections.declarative import Projection
from cqrs.queries.handlers import Query, QueryHandlers, Register, is_async

if TYPE_CHECKING:  # imported on first use: `import cqrs` must not need greenlet
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

__all__ = ["AsyncQueryBus"]

R = TypeVar("R")
Q = TypeVar("Q", bound="Query[Any]")


class AsyncQueryBus:
    """Dispatches queries to their handlers, each in a read-only ``AsyncSession`` on ``bind``.

    ``handlers`` is the registry to share with a sync ``QueryBus`` (or another
    async bus); by default the bus has its own, filled by :meth:`handles`.

    >>> # not run: in a coroutine (a doctest cannot await)
    >>> queries = AsyncQueryBus(async_engine, handlers=handlers)      # doctest: +SKIP
    >>> await queries.ask(OrderStatus("o-1"), after=token, wait_for=summary)  # doctest: +SKIP
    'placed'
    """

    def __init__(
        self,
        bind: AsyncEngine | async_sessionmaker[AsyncSession],
        *,
        handlers: QueryHandlers | None = None,
    ) -> None:
        ext = asyncio_ext("cqrs.AsyncQueryBus")
        if isinstance(bind, ext.AsyncEngine):
            sessions = ext.async_sessionmaker(bind)
        elif isinstance(bind, ext.async_sessionmaker):
            sessions = bind
        else:
            raise ConfigurationError(
                f"AsyncQueryBus takes an AsyncEngine or an async_sessionmaker, got "
                f"{type(bind).__name__}; build one with create_async_engine(url), or use "
                "cqrs.QueryBus for a sync Engine"
            )
        self.sessions: async_sessionmaker[AsyncSession] = sessions
        self._engine_type: type[AsyncEngine] = ext.AsyncEngine
        self.handlers = handlers if handlers is not None else QueryHandlers()

    def handles(self, query_type: type[Q]) -> Register[Q]:
        """Register the handler of ``query_type`` (one per type): a ``def`` taking a
        ``Session`` or an ``async def`` taking an ``AsyncSession``."""
        return self.handlers.handles(query_type)

    async def ask(
        self,
        query: Query[R],
        *,
        after: Position | str | None = None,
        wait_for: Projection | str | None = None,
        timeout: float = 5.0,
    ) -> R:
        """Answer ``query``; with ``after`` (a position token) and ``wait_for`` (the
        projection the answer comes from), first wait, without blocking the event loop,
        until that projection has passed the position (raises
        :class:`~cqrs.errors.ReadModelTimeout` after ``timeout`` seconds)."""
        handler = self.handlers.handler_for(type(query))
        if after is not None and wait_for is not None:
            engine = self.sessions.kw.get("bind")
            if isinstance(engine, self._engine_type):  # a pooled connection per poll, not held
                await wait_for_async(engine, wait_for, after, timeout=timeout)
            else:
                async with self.sessions() as session:
                    conn = await session.connection()
                    await wait_for_async(conn, wait_for, after, timeout=timeout)
        async with self.sessions() as session:
            await session.execute(text("SET TRANSACTION READ ONLY"))
            try:
                if is_async(handler):
                    return cast(R, await handler(query, session))

                def run(sync_session: Session) -> R:
                    return cast(R, handler(query, sync_session))

                return await session.run_sync(run)
            finally:
                await session.rollback()
