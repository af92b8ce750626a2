"""Public: the query side's bus (see ``cqrs.queries.bus``)."""

from cqrs.queries.bus import Query, QueryBus

__all__ = ["Query", "QueryBus"]
