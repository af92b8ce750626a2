"""Public: ``EventStoreProtocol``, what every event store offers (PostgreSQL, in memory).

The command side (repositories, the unit of work, the bus) is written
against this protocol, so a test can hand it
:class:`~cqrs.testing.memory.InMemoryEventStore` instead of
:class:`~cqrs.store.event_store.EventStore`. Both pass the same conformance
suite (``cqrs.testing.conformance``). ``executor`` is whatever the store runs
in: a ``Session`` or ``Connection`` for PostgreSQL, a ``MemoryTransaction``
(or ``None``) in memory.

    >>> from cqrs.store import EventStore
    >>> from cqrs.testing import InMemoryEventStore
    >>> isinstance(EventStore(), EventStoreProtocol), isinstance(
    ...     InMemoryEventStore(), EventStoreProtocol)
    (True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cqrs.config import Settings
from cqrs.events.codec import EventCodec
from cqrs.events.model import START, Event, NewEvent, Position, RecordedEvent
from cqrs.store.expected import ANY, AppendResult, Expected, StreamAppend

if TYPE_CHECKING:
    from cqrs.store.event_store import StreamInfo


@runtime_checkable
class EventStoreProtocol(Protocol):
    """Append to and read from an event log; see :class:`~cqrs.store.event_store.EventStore`
    for each method's contract."""

    settings: Settings
    codec: EventCodec

    def append(
        self,
        executor: Any,
        stream_id: str,
        events: Sequence[Event | NewEvent[Event]],
        *,
        expected_version: Expected = ANY,
        stream_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id``: all of them or none."""
        ...

    def append_many(
        self,
        executor: Any,
        appends: Sequence[StreamAppend],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[AppendResult]:
        """Append to several streams: every expectation checked first, then all or none."""
        ...

    def archive(self, executor: Any, stream_id: str, *, archived: bool = True) -> None:
        """Mark a stream archived (it takes no more events) or take the mark off."""
        ...

    def stream_info(self, executor: Any, stream_id: str) -> StreamInfo | None:
        """The stream's row, or ``None`` when it does not exist."""
        ...

    def read_stream(
        self,
        executor: Any,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent[Event]]:
        """The stream's events from ``from_version`` to ``to_version``, in version order."""
        ...

    def read_all(
        self,
        executor: Any,
        *,
        after: Position = START,
        limit: int = 1000,
        types: Iterable[str] | None = None,
    ) -> list[RecordedEvent[Event]]:
        """Committed events after ``after`` in log order, at most ``limit`` of them."""
        ...

    def head(self, executor: Any) -> Position:
        """The position of the newest event written."""
        ...

    def horizon(self, executor: Any) -> int:
        """The oldest transaction id still running that can write the log."""
        ...

    def check_stream_id(self, stream_id: object) -> None:
        """Raise :class:`~cqrs.errors.InvalidStreamId` unless ``stream_id`` is usable."""
        ...
