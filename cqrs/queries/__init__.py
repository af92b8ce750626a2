"""Public: the query side's buses (see ``cqrs.queries.bus`` and ``cqrs.queries.asyncio``)
and the handler registry they share (``cqrs.queries.handlers``)."""

from cqrs.queries.asyncio import AsyncQueryBus
from cqrs.queries.bus import QueryBus
from cqrs.queries.handlers import Query, QueryHandlers

__all__ = ["AsyncQueryBus", "Query", "QueryBus", "QueryHandlers"]
