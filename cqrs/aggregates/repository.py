"""Public: ``Repository[T]``, loading and saving one aggregate class.

Loading reads the latest usable snapshot plus the later events; saving
appends the pending events with the loaded version as the expected version
(a concurrent writer makes it raise :class:`~cqrs.errors.ConcurrencyError`)
and writes a snapshot when the class's policy says so. Everything runs in
the caller's transaction::

    >>> bus.dispatch(PlaceOrder("o-1", "c-1", Decimal(5)), Session(engine))  # an order to load
    'o-1'
    >>> with Session(engine) as session, session.begin():
    ...     orders = Repository(Order, session)
    ...     order = orders.get("o-1")                          # typed as Order
    ...     order.ship()
    ...     result = orders.save(order)                        # an AppendResult
    >>> result.version
    2

Inside a command handler use ``uow.repository(Order)``: the unit of work
saves every touched aggregate for you.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from cqrs.aggregates.aggregate import Aggregate
from cqrs.aggregates.snapshots import SnapshotStore, snapshot_due
from cqrs.errors import (
    AggregateError,
    ConcurrencyError,
    InvalidAggregateId,
    StreamAlreadyExists,
    StreamNotFound,
)
from cqrs.store import validation
from cqrs.store.event_store import EventStore, connection_of
from cqrs.store.expected import AppendResult, StreamAppend
from cqrs.store.interface import EventStoreProtocol

T = TypeVar("T", bound=Aggregate)


@functools.cache
def default_store() -> EventStore:
    """The ``EventStore()`` shared by repositories built without one (its codec is reused)."""
    return EventStore()


@functools.cache
def default_snapshots() -> SnapshotStore:
    """The ``SnapshotStore()`` shared by repositories built without one."""
    return SnapshotStore()


class Repository(Generic[T]):
    """Load, create and save aggregates of one class through a session or connection.

    The repository keeps the aggregates it handed out (an identity map):
    ``get`` twice in one repository answers the same object.
    """

    def __init__(
        self,
        aggregate: type[T],
        session: Session | Connection,
        *,
        store: EventStoreProtocol | None = None,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
            raise AggregateError(f"Repository takes an Aggregate subclass, got {aggregate!r}")
        self.aggregate = aggregate
        self.session = session
        self.store = store or default_store()
        self.snapshots = snapshots or default_snapshots()
        self._seen: dict[str, T] = {}
        self._absent: set[str] = set()

    @property
    def touched(self) -> list[T]:
        """Every aggregate this repository created or loaded, in order."""
        return list(self._seen.values())

    def get(self, id: str) -> T:
        """The aggregate ``id``; raises :class:`~cqrs.errors.StreamNotFound`."""
        if not isinstance(id, str):
            raise InvalidAggregateId(self.aggregate.__qualname__, id, "is not a str")
        found = self._seen.get(id)
        if found is not None:
            return found
        aggregate = self._load(id)
        self._seen[id] = aggregate
        return aggregate

    def get_or_none(self, id: str) -> T | None:
        """The aggregate ``id``, or ``None`` when it has no stream."""
        try:
            return self.get(id)
        except StreamNotFound:
            self._absent.add(id)
            return None

    def create(self, id: str) -> T:
        """A new aggregate ``id``.

        ``id`` must be a printable ``str`` (``cqrs.store.validation``): ``create(None)``
        raises :class:`~cqrs.errors.InvalidAggregateId` instead of making ``acct-None``.
        Saving raises :class:`~cqrs.errors.StreamAlreadyExists` when the stream
        exists (not retried: load it with ``get``), or a plain
        :class:`~cqrs.errors.ConcurrencyError` (retried) when ``get_or_none(id)``
        found no stream in this repository and another writer created it since.
        """
        validation.check_aggregate_id(self.aggregate.__qualname__, id, self.store.settings)
        if id in self._seen:
            raise AggregateError(
                f"{self.aggregate.__qualname__} {id!r} was already loaded or created in this "
                "unit of work; use get() for an existing aggregate"
            )
        self.store.check_stream_id(self.aggregate.stream_id_for(id))
        aggregate = self.aggregate(id)
        self._seen[id] = aggregate
        return aggregate

    def save(
        self, aggregate: T, *, metadata: Mapping[str, Any] | None = None
    ) -> AppendResult | None:
        """Append ``aggregate``'s pending events (``None`` when there are none)."""
        pending = self.pending_append(aggregate, metadata=metadata)
        if pending is None:
            return None
        try:
            result = self.store.append(
                connection_of(self.session),
                pending.stream_id,
                pending.events,
                expected_version=pending.expected_version,
                stream_type=pending.stream_type,
                metadata=pending.metadata,
            )
        except ConcurrencyError as exc:
            raise self.refusal(aggregate, exc) from exc
        self.saved(aggregate)
        return result

    def refusal(self, aggregate: T, exc: ConcurrencyError) -> ConcurrencyError:
        """What a refused save of ``aggregate`` means: :class:`StreamAlreadyExists`
        (not retried) for a new aggregate whose stream exists, unless this repository
        found no stream for it (then another writer created it since: retried)."""
        if (
            type(exc) is ConcurrencyError
            and aggregate.loaded_version == 0
            and exc.actual is not None
            and aggregate.id not in self._absent
        ):
            return StreamAlreadyExists(
                aggregate.stream_id, exc.actual, type(aggregate).__qualname__
            )
        return exc

    def pending_append(
        self, aggregate: T, *, metadata: Mapping[str, Any] | None = None
    ) -> StreamAppend | None:
        """``aggregate``'s pending events as one stream's part of ``append_many``
        (``None`` when there are none); call :meth:`saved` once it is appended."""
        pending = aggregate.pending_events
        if not pending:
            return None
        return StreamAppend(
            aggregate.stream_id,
            list(pending),
            expected_version=aggregate.loaded_version,
            stream_type=aggregate.aggregate_type,
            metadata=dict(metadata or {}),
        )

    def saved(self, aggregate: T) -> None:
        """Mark ``aggregate``'s pending events appended; snapshot it when one is due."""
        before = aggregate.loaded_version
        aggregate.mark_saved()
        if snapshot_due(type(aggregate), before, aggregate.version):
            self.snapshots.save(connection_of(self.session), aggregate)

    def _load(self, id: str) -> T:
        cls = self.aggregate
        stream_id = cls.stream_id_for(id)
        conn = connection_of(self.session)
        aggregate = None
        if cls.snapshot_every is not None:
            aggregate = self.snapshots.load(conn, cls, id)
        if aggregate is None:
            aggregate = cls(id)
        recorded = self.store.read_stream(conn, stream_id, from_version=aggregate.version + 1)
        aggregate.replay(r.event for r in recorded)
        return aggregate
