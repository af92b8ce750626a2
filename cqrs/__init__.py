"""Public: CQRS and event sourcing for SQLAlchemy 2 services on PostgreSQL.

The curated API; ``tests/test_public_api.py`` pins ``__all__``::

    from cqrs import Event, EventStore, NO_STREAM, event

``cqrs.__version__`` is the installed distribution's (``sqlalchemy-cqrs``)::

    >>> import cqrs
    >>> cqrs.__version__  # doctest: +SKIP
    '0.1.0'
"""

from cqrs._version import __version__ as __version__
from cqrs.aggregates import Aggregate, Repository, SnapshotIgnored, applies
from cqrs.commands import (
    CommandBus,
    CommandOutcome,
    RetryOnConflict,
    UnitOfWork,
    run_in_transaction,
)
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
from cqrs.projections import (
    E,
    FailurePolicy,
    ProcessManager,
    Projection,
    ProjectionContext,
    ProjectionRunner,
    install_notify,
    wait_for,
)
from cqrs.queries import Query, QueryBus
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
    "E",
    "NO_STREAM",
    "START",
    "STREAM_EXISTS",
    "Aggregate",
    "AppendResult",
    "CommandBus",
    "CommandOutcome",
    "Event",
    "EventRegistry",
    "EventStore",
    "ExpectedVersion",
    "FailurePolicy",
    "NewEvent",
    "Position",
    "ProcessManager",
    "Projection",
    "ProjectionContext",
    "ProjectionRunner",
    "Query",
    "QueryBus",
    "RecordedEvent",
    "Repository",
    "RetryOnConflict",
    "Settings",
    "SnapshotIgnored",
    "StreamInfo",
    "UnitOfWork",
    "applies",
    "create_schema",
    "default_registry",
    "drop_schema",
    "event",
    "install_notify",
    "metadata",
    "run_in_transaction",
    "uuid7",
    "wait_for",
]
