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

Handlers declared on a ``QueryHandlers`` registry serve this bus and an
``AsyncQueryBus`` alike (``handlers=``; ``cqrs.queries.handlers``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from cqrs.binds import require_sync
from cqrs.errors import QueryError
from cqrs.events.model import Position
from cqrs.projections.declarative import Projection
from cqrs.projections.status import wait_for as wait_for_projection
from cqrs.queries.handlers import Query, QueryHandlers, is_async

__all__ = ["Query", "QueryBus"]

R = TypeVar("R")
Q = TypeVar("Q", bound="Query[Any]")


class QueryBus:
    """Dispatches queries to their handlers, each in a read-only session on ``bind``.

    ``handlers`` shares a :class:`~cqrs.queries.handlers.QueryHandlers` registry
    with other buses (an ``AsyncQueryBus``, say); by default the bus has its own.
    """

    def __init__(
        self, bind: Engine | sessionmaker[Session], *, handlers: QueryHandlers | None = None
    ) -> None:
        require_sync(bind, "QueryBus", "use cqrs.AsyncQueryBus with the async engine")
        self.sessions = bind if isinstance(bind, sessionmaker) else sessionmaker(bind)
        self.handlers = handlers if handlers is not None else QueryHandlers()

    def handles(
        self, query_type: type[Q]
    ) -> Callable[[Callable[[Q, Session], R]], Callable[[Q, Session], R]]:
        """Register the handler of ``query_type`` (one per type)."""
        return self.handlers.handles(query_type)

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
        handler = self.handlers.handler_for(type(query))
        if is_async(handler):
            raise QueryError(
                f"the handler of {type(query).__name__} ({handler.__name__}) is an async def "
                "taking an AsyncSession; ask it through cqrs.AsyncQueryBus, or declare it "
                "with def taking a Session to serve both buses"
            )
        with self.sessions() as session:
            if after is not None and wait_for is not None:
                wait_for_projection(session.connection(), wait_for, after, timeout=timeout)
                session.rollback()
            session.execute(text("SET TRANSACTION READ ONLY"))
            try:
                return cast(R, handler(query, session))
            finally:
                session.rollback()
