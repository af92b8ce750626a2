"""Public: test helpers: a real PostgreSQL and NATS, isolated schemas, pytest fixtures.

``EventStoreConformance`` is imported on first use: it needs pytest, the rest does not.
"""

from typing import TYPE_CHECKING, Any

from cqrs.testing.database import (
    database_url,
    database_url_for_tests,
    embedded_url,
    isolated_schema,
    schema_engine,
)
from cqrs.testing.memory import InMemoryEventStore
from cqrs.testing.nats import NatsServer, nats_url
from cqrs.testing.scenario import AggregateScenario, CommandScenario, ProcessScenario

if TYPE_CHECKING:
    from cqrs.testing.conformance import EventStoreConformance

__all__ = [
    "AggregateScenario",
    "CommandScenario",
    "EventStoreConformance",
    "InMemoryEventStore",
    "NatsServer",
    "ProcessScenario",
    "database_url",
    "database_url_for_tests",
    "embedded_url",
    "isolated_schema",
    "nats_url",
    "schema_engine",
]


def __getattr__(name: str) -> Any:
    if name == "EventStoreConformance":
        from cqrs.testing.conformance import EventStoreConformance

        return EventStoreConformance
    raise AttributeError(f"module 'cqrs.testing' has no attribute {name!r}")
