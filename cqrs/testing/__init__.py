"""Public: test helpers: a real PostgreSQL, isolated schemas, pytest fixtures.

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
from cqrs.testing.scenario import AggregateScenario, CommandScenario, ProcessScenario

if TYPE_CHECKING:
    from cqrs.testing.conformance import EventStoreConformance

__all__ = [
    "AggregateScenario",
    "CommandScenario",
    "EventStoreConformance",
    "InMemoryEventStore",
    "ProcessScenario",
    "database_url",
    "database_url_for_tests",
    "embedded_url",
    "isolated_schema",
    "schema_engine",
]


def __getattr__(name: str) -> Any:
    if name == "EventStoreConformance":
        from cqrs.testing.conformance import EventStoreConformance

        return EventStoreConformance
    raise AttributeError(f"module 'cqrs.testing' has no attribute {name!r}")
