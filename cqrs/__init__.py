"""Public: CQRS and event sourcing for SQLAlchemy 2 services on PostgreSQL.

The curated API; ``tests/test_public_api.py`` pins ``__all__``::

    from cqrs import Event, EventStore, NO_STREAM, event
"""

from cqrs.config import Settings
from cqrs.events import (
    START,
    Event,
    EventRegistry,
    NewEvent,
    Position,
    RecordedEvent,
    default_registry,
    event,
    uuid7,
)
from cqrs.schema import create_schema, drop_schema, metadata
from cqrs.store import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventStore,
    ExpectedVersion,
    StreamInfo,
)

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "STREAM_EXISTS",
    "AppendResult",
    "Event",
    "EventRegistry",
    "EventStore",
    "ExpectedVersion",
    "NewEvent",
    "Position",
    "RecordedEvent",
    "Settings",
    "StreamInfo",
    "create_schema",
    "default_registry",
    "drop_schema",
    "event",
    "metadata",
    "uuid7",
]
