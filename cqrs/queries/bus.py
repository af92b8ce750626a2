"""Public: the query bus: typed queries, handlers with read-only sessions.

Queries are small classes deriving from ``Query[R]`` (``R`` is what the
handler returns); handlers get the query and a ``Session`` whose transaction
is ``READ ONLY``. The bus may be bound to another engine than the command
side (a replica), and can wait for a projection to pass a position token
first (read-your-writes)::

    @attrs.frozen
    class OrdersOfCustomer(Query[list[str]]):
        customer_id: str

    queries = QueryBus(replica_engine)

    @queries.handles(OrdersOfCustomer)
    def orders_of(q: OrdersOfCustomer, session: Session) -> list[str]:
        return list(session.scalars(select(OrderSummary.order_id).where(...)))

    ids = queries.ask(OrdersOfCustomer("c-1"), after=token, wait_for=summary)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from cqrs.errors import QueryError, QueryHandlerNotFound
from cqrs.events.model import Position
from cqrs.projections.declarative import Projection
from cqrs.projections.status import wait_for as wait_for_projection

R = TypeVar("R")
Q = TypeVar("Q", bound="Query[Any]")


class Query(Generic[R]):
    """Base of query types; ``R`` is the type of the answer."""


class QueryBus:
    """Dispatches queries to their handlers, each in a read-only session on ``bind``."""

    def __init__(self, bind: Engine | sessionmaker[Session]) -> None:
        self.sessions = bind if isinstance(bind, sessionmaker) else sessionmaker(bind)
        self._handlers: dict[type[Any], Callable[[Any, Session], Any]] = {}

    def handles(
        self, query_type: type[Q]
    ) -> Callable[[Callable[[Q, Session], R]], Callable[[Q, Session], R]]:
        """Register the handler of ``query_type`` (one per type)."""

        def register(fn: Callable[[Q, Session], R]) -> Callable[[Q, Session], R]:
            if query_type in self._handlers:
                raise QueryError(
                    f"{query_type.__name__} already has a handler "
                    f"({self._handlers[query_type].__name__}); register one handler per query"
                )
            self._handlers[query_type] = fn
            return fn

        return register

    def ask(
        self,
        query: Query[R],
        *,
        after: Position | str | None = None,
        wait_for: Projection | str | None = None,
        timeout: float = 5.0,
    ) -> R:
        """Answer ``query``; with ``after`` and ``wait_for``, first wait for that projection
        to pass the position (raises :class:`~cqrs.errors.ReadModelTimeout`)."""
        handler = self._handlers.get(type(query))
        if handler is None:
            raise QueryHandlerNotFound(type(query).__name__)
        with self.sessions() as session:
            if after is not None and wait_for is not None:
                wait_for_projection(session.connection(), wait_for, after, timeout=timeout)
                session.rollback()
            session.execute(text("SET TRANSACTION READ ONLY"))
            try:
                return cast(R, handler(query, session))
            finally:
                session.rollback()
