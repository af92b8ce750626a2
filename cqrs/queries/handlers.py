"""Public: ``QueryHandlers``, the registry of query handlers that buses share.

A service declares its handlers once, at import time, and hands the registry
to a ``QueryBus`` (sync) and an ``AsyncQueryBus`` (asyncio) built at start-up::

    handlers = QueryHandlers()

    @handlers.handles(OrdersOfCustomer)          # a plain function: serves both buses
    def orders_of(q: OrdersOfCustomer, session: Session) -> list[str]:
        return list(session.scalars(select(OrderSummary.order_id).where(...)))

    @handlers.handles(OrderCount)                # async def: AsyncQueryBus only
    async def order_count(q: OrderCount, session: AsyncSession) -> int:
        return (await session.execute(select(func.count()).select_from(OrderSummary))).scalar_one()

    queries = QueryBus(engine, handlers=handlers)
    async_queries = AsyncQueryBus(async_engine, handlers=handlers)

A ``def`` handler takes a ``Session``; under ``AsyncQueryBus`` it runs through
``AsyncSession.run_sync`` (SQLAlchemy's greenlet bridge), so one function
serves both. An ``async def`` handler takes an ``AsyncSession`` and only
``AsyncQueryBus`` can run it: the sync bus refuses it with a ``QueryError``
that says so.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from sqlalchemy.orm import Session

from cqrs.errors import QueryError, QueryHandlerNotFound

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

R = TypeVar("R")
Q = TypeVar("Q", bound="Query[Any]")
AnyHandler = Callable[[Any, Any], Any]


class Query(Generic[R]):
    """Base of query types; ``R`` is the type of the answer."""


class Register(Protocol[Q]):
    """What ``handles(QueryType)`` returns: a decorator for a sync or an async handler."""

    @overload
    def __call__(
        self, fn: Callable[[Q, AsyncSession], Awaitable[R]]
    ) -> Callable[[Q, AsyncSession], Awaitable[R]]: ...

    @overload
    def __call__(self, fn: Callable[[Q, Session], R]) -> Callable[[Q, Session], R]: ...


class QueryHandlers:
    """One handler per query type; a sync ``def`` (taking a ``Session``) or an
    ``async def`` (taking an ``AsyncSession``)."""

    def __init__(self) -> None:
        self._handlers: dict[type[Any], AnyHandler] = {}

    def handles(self, query_type: type[Q]) -> Register[Q]:
        """Register the handler of ``query_type`` (one per type)."""

        def register(fn: AnyHandler) -> AnyHandler:
            if query_type in self._handlers:
                raise QueryError(
                    f"{query_type.__name__} already has a handler "
                    f"({self._handlers[query_type].__name__}); register one handler per query"
                )
            self._handlers[query_type] = fn
            return fn

        return register

    def handler_for(self, query_type: type[Any]) -> AnyHandler:
        """The handler of ``query_type``; raises :class:`~cqrs.errors.QueryHandlerNotFound`."""
        handler = self._handlers.get(query_type)
        if handler is None:
            raise QueryHandlerNotFound(query_type.__name__)
        return handler


def is_async(handler: AnyHandler) -> bool:
    """Whether ``handler`` is an ``async def`` (it takes an ``AsyncSession``)."""
    return inspect.iscoroutinefunction(handler)
