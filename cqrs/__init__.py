"""Public: CQRS and event sourcing for SQLAlchemy 2 services on PostgreSQL.

The curated API; ``tests/test_public_api.py`` pins ``__all__``::

    from cqrs import Event, EventStore, NO_STREAM, event

Names load on first use (PEP 562), so ``import cqrs.commands`` in a web
worker does not import the projection runner, the CLI or the relay.

``cqrs.__version__`` is the installed distribution's (``sqlalchemy-cqrs``)::

    >>> import cqrs
    >>> from importlib.metadata import version
    >>> cqrs.__version__ == version("sqlalchemy-cqrs")
    True
"""

import importlib as _importlib
import typing as _typing

from cqrs._version import __version__ as __version__

if _typing.TYPE_CHECKING:
    from cqrs.aggregates import (
        Aggregate as Aggregate,
    )
    from cqrs.aggregates import (
        Repository as Repository,
    )
    from cqrs.aggregates import (
        SnapshotIgnored as SnapshotIgnored,
    )
    from cqrs.aggregates import (
        applies as applies,
    )
    from cqrs.commands import (
        CommandBus as CommandBus,
    )
    from cqrs.commands import (
        CommandOutcome as CommandOutcome,
    )
    from cqrs.commands import (
        RetryOnConflict as RetryOnConflict,
    )
    from cqrs.commands import (
        UnitOfWork as UnitOfWork,
    )
    from cqrs.commands import (
        run_in_transaction as run_in_transaction,
    )
    from cqrs.config import (
        Settings as Settings,
    )
    from cqrs.errors import (
        AppendOrderConflict as AppendOrderConflict,
    )
    from cqrs.errors import (
        ConcurrencyError as ConcurrencyError,
    )
    from cqrs.errors import (
        CqrsError as CqrsError,
    )
    from cqrs.errors import (
        InvalidInput as InvalidInput,
    )
    from cqrs.errors import (
        ReadModelTimeout as ReadModelTimeout,
    )
    from cqrs.errors import (
        StreamNotFound as StreamNotFound,
    )
    from cqrs.events import (
        START as START,
    )
    from cqrs.events import (
        Event as Event,
    )
    from cqrs.events import (
        EventRegistry as EventRegistry,
    )
    from cqrs.events import (
        NewEvent as NewEvent,
    )
    from cqrs.events import (
        Position as Position,
    )
    from cqrs.events import (
        RecordedEvent as RecordedEvent,
    )
    from cqrs.events import (
        default_registry as default_registry,
    )
    from cqrs.events import (
        event as event,
    )
    from cqrs.events import (
        uuid7 as uuid7,
    )
    from cqrs.projections import (
        E as E,
    )
    from cqrs.projections import (
        FailurePolicy as FailurePolicy,
    )
    from cqrs.projections import (
        ProcessManager as ProcessManager,
    )
    from cqrs.projections import (
        Projection as Projection,
    )
    from cqrs.projections import (
        ProjectionContext as ProjectionContext,
    )
    from cqrs.projections import (
        ProjectionRunner as ProjectionRunner,
    )
    from cqrs.projections import (
        install_notify as install_notify,
    )
    from cqrs.projections import (
        wait_for as wait_for,
    )
    from cqrs.projections import (
        wait_for_async as wait_for_async,
    )
    from cqrs.queries import (
        AsyncQueryBus as AsyncQueryBus,
    )
    from cqrs.queries import (
        Query as Query,
    )
    from cqrs.queries import (
        QueryBus as QueryBus,
    )
    from cqrs.queries import (
        QueryHandlers as QueryHandlers,
    )
    from cqrs.schema import (
        create_schema as create_schema,
    )
    from cqrs.schema import (
        drop_schema as drop_schema,
    )
    from cqrs.schema import (
        metadata as metadata,
    )
    from cqrs.store import (
        ANY as ANY,
    )
    from cqrs.store import (
        NO_STREAM as NO_STREAM,
    )
    from cqrs.store import (
        STREAM_EXISTS as STREAM_EXISTS,
    )
    from cqrs.store import (
        AppendResult as AppendResult,
    )
    from cqrs.store import (
        EventStore as EventStore,
    )
    from cqrs.store import (
        ExpectedVersion as ExpectedVersion,
    )
    from cqrs.store import (
        StreamAppend as StreamAppend,
    )
    from cqrs.store import (
        StreamInfo as StreamInfo,
    )

# Where each public name lives; ``__getattr__`` imports it on first use.
_HOMES: dict[str, str] = {
    "Aggregate": "cqrs.aggregates",
    "applies": "cqrs.aggregates",
    "Repository": "cqrs.aggregates",
    "SnapshotIgnored": "cqrs.aggregates",
    "CommandBus": "cqrs.commands",
    "CommandOutcome": "cqrs.commands",
    "RetryOnConflict": "cqrs.commands",
    "run_in_transaction": "cqrs.commands",
    "UnitOfWork": "cqrs.commands",
    "Settings": "cqrs.config",
    "AppendOrderConflict": "cqrs.errors",
    "ConcurrencyError": "cqrs.errors",
    "CqrsError": "cqrs.errors",
    "InvalidInput": "cqrs.errors",
    "ReadModelTimeout": "cqrs.errors",
    "StreamNotFound": "cqrs.errors",
    "default_registry": "cqrs.events",
    "Event": "cqrs.events",
    "event": "cqrs.events",
    "EventRegistry": "cqrs.events",
    "NewEvent": "cqrs.events",
    "Position": "cqrs.events",
    "RecordedEvent": "cqrs.events",
    "START": "cqrs.events",
    "uuid7": "cqrs.events",
    "E": "cqrs.projections",
    "FailurePolicy": "cqrs.projections",
    "install_notify": "cqrs.projections",
    "ProcessManager": "cqrs.projections",
    "Projection": "cqrs.projections",
    "ProjectionContext": "cqrs.projections",
    "ProjectionRunner": "cqrs.projections",
    "wait_for": "cqrs.projections",
    "wait_for_async": "cqrs.projections",
    "Query": "cqrs.queries",
    "QueryBus": "cqrs.queries",
    "AsyncQueryBus": "cqrs.queries",
    "QueryHandlers": "cqrs.queries",
    "create_schema": "cqrs.schema",
    "drop_schema": "cqrs.schema",
    "metadata": "cqrs.schema",
    "ANY": "cqrs.store",
    "AppendResult": "cqrs.store",
    "EventStore": "cqrs.store",
    "ExpectedVersion": "cqrs.store",
    "NO_STREAM": "cqrs.store",
    "STREAM_EXISTS": "cqrs.store",
    "StreamAppend": "cqrs.store",
    "StreamInfo": "cqrs.store",
}

__all__ = [
    "ANY",
    "E",
    "NO_STREAM",
    "START",
    "STREAM_EXISTS",
    "Aggregate",
    "AppendOrderConflict",
    "AppendResult",
    "AsyncQueryBus",
    "CommandBus",
    "CommandOutcome",
    "ConcurrencyError",
    "CqrsError",
    "Event",
    "EventRegistry",
    "EventStore",
    "ExpectedVersion",
    "FailurePolicy",
    "InvalidInput",
    "NewEvent",
    "Position",
    "ProcessManager",
    "Projection",
    "ProjectionContext",
    "ProjectionRunner",
    "Query",
    "QueryBus",
    "QueryHandlers",
    "ReadModelTimeout",
    "RecordedEvent",
    "Repository",
    "RetryOnConflict",
    "Settings",
    "SnapshotIgnored",
    "StreamAppend",
    "StreamInfo",
    "StreamNotFound",
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
    "wait_for_async",
]


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'cqrs' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
