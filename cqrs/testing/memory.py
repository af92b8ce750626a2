"""Public: ``InMemoryEventStore``, a test double of ``EventStore`` with the same API and errors.

It implements :class:`~cqrs.store.interface.EventStoreProtocol`, validates,
encodes and decodes exactly like the PostgreSQL store (both call the same
functions: ``cqrs.store.validation``, ``cqrs.store.encoding``,
``cqrs.store.rows``), keeps the same expected-version semantics and passes the
same conformance suite (``cqrs.testing.conformance``). Transactions are
serialised by one lock: a :class:`MemoryTransaction` holds it from begin to
commit or rollback, so readers only ever see committed events.

    >>> store = InMemoryEventStore(registry)
    >>> with store.transaction() as tx:
    ...     _ = store.append(tx, "order-1", [OrderPlaced("order-1", "c-1", Decimal(5))],
    ...                      expected_version=NO_STREAM)
    >>> store.read_stream(None, "order-1")[0].version
    1

Any executor other than a :class:`MemoryTransaction` of the same log (a
``Session``, ``None``, ...) makes the call its own committed transaction.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs

from cqrs import errors
from cqrs.config import Settings
from cqrs.events.codec import EventCodec
from cqrs.events.model import START, Event, NewEvent, Position, RecordedEvent
from cqrs.events.registry import EventRegistry, default_registry
from cqrs.store import validation
from cqrs.store.encoding import encode_batch
from cqrs.store.event_store import StreamInfo, default_stream_type
from cqrs.store.expected import ANY, AppendResult, Expected, StreamAppend, check_appends, holds
from cqrs.store.expected import check as check_expected
from cqrs.store.rows import EventRow, decode_row
from cqrs.store.validation import check_stream_id

__all__ = ["InMemoryEventStore", "MemoryLog", "MemoryTransaction"]

T = TypeVar("T")


class MemoryLog:
    """The state behind one or more ``InMemoryEventStore``: streams, events, one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None
        self.streams: dict[str, StreamInfo] = {}
        self.stream_rows: dict[str, list[EventRow]] = {}
        self.rows: list[EventRow] = []  # JSON kept as text, xid as int
        self.next_xid = 1
        self.next_position = 1

    def begin(self) -> MemoryTransaction:
        """Start a transaction (blocks while another one is open); commit or roll it back."""
        if self.owner == threading.get_ident():
            raise errors.InvalidInput(
                "this thread already holds an open MemoryTransaction on this log; pass that "
                "transaction as the executor instead of starting another one"
            )
        self.lock.acquire()
        self.owner = threading.get_ident()
        return MemoryTransaction(self)

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        """A transaction that commits when the block ends and rolls back if it raises."""
        tx = self.begin()
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        tx.commit()


class MemoryTransaction:
    """An open transaction on a :class:`MemoryLog`: pass it where ``EventStore`` takes a Session."""

    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.xid: int | None = None
        self.open = True
        self._saved: dict[str, StreamInfo | None] = {}
        self._rows_before = len(log.rows)

    def commit(self) -> None:
        """Make the transaction's writes visible and release the log."""
        self._end()

    def rollback(self) -> None:
        """Undo every write of the transaction and release the log."""
        log = self.log
        for stream_id, info in self._saved.items():
            if info is None:
                log.streams.pop(stream_id, None)
                log.stream_rows.pop(stream_id, None)
            else:
                log.streams[stream_id] = info
                del log.stream_rows[stream_id][info.version :]
        del log.rows[self._rows_before :]
        self._end()

    def touch(self, stream_id: str) -> None:
        """Remember the stream as it was before this transaction first changed it."""
        if stream_id not in self._saved:
            self._saved[stream_id] = self.log.streams.get(stream_id)

    def transaction_id(self) -> int:
        """The transaction's id, assigned at its first write (as PostgreSQL does)."""
        if self.xid is None:
            self.xid = self.log.next_xid
            self.log.next_xid += 1
        return self.xid

    def _end(self) -> None:
        if not self.open:
            raise errors.InvalidInput("this MemoryTransaction has already ended")
        self.open = False
        self.log.owner = None
        self.log.lock.release()


class InMemoryEventStore:
    """An event store over a :class:`MemoryLog` instead of PostgreSQL.

    Stores sharing one ``log`` see the same events, which is how a test reads
    with another registry (say, a newer event version and its upcaster).
    """

    def __init__(
        self,
        registry: EventRegistry | None = None,
        settings: Settings | None = None,
        codec: EventCodec | None = None,
        *,
        log: MemoryLog | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.codec = codec or EventCodec(registry or default_registry)
        self.log = log or MemoryLog()

    def transaction(self) -> AbstractContextManager[MemoryTransaction]:
        """Shorthand for ``self.log.transaction()``."""
        return self.log.transaction()

    # -- writing -------------------------------------------------------------

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
        """Same contract as :meth:`EventStore.append`."""
        self.check_stream_id(stream_id)
        expected = check_expected(expected_version)
        batch = encode_batch(self.codec, self.settings, events, metadata, stream_type=stream_type)
        validation.check_version_room(stream_id, expected, len(batch.ids))

        def run(tx: MemoryTransaction) -> AppendResult:
            log = tx.log
            info = log.streams.get(stream_id)
            actual = None if info is None else info.version
            if not batch.ids:
                if not holds(expected, actual):
                    raise _refused(stream_id, expected, info)
                return AppendResult(stream_id, actual or 0, self.head(tx), 0)
            if batch.explicit_ids:
                done = _already_appended(log, stream_id, batch.ids)
                if done is not None:
                    return done
            if not holds(expected, actual) or (info is not None and info.archived):
                raise _refused(stream_id, expected, info)
            if info is not None and info.version + len(batch.ids) > validation.INT32_MAX:
                raise errors.StreamFull(stream_id, info.version, len(batch.ids))
            tx.touch(stream_id)
            if info is None:
                info = StreamInfo(
                    stream_id,
                    stream_type or default_stream_type(stream_id),
                    0,
                    datetime.now(UTC),
                    False,
                )
                log.stream_rows[stream_id] = []
            xid = tx.transaction_id()
            recorded = []
            for i, event_id in enumerate(batch.ids):
                position, log.next_position = log.next_position, log.next_position + 1
                event = RecordedEvent(
                    event_id, stream_id, info.stream_type, info.version + i + 1,
                    Position(xid, position), batch.types[i], batch.schema_versions[i],
                    batch.events[i], batch.metadata[i], datetime.now(UTC),
                )  # fmt: skip
                row = EventRow(
                    event_id, stream_id, info.stream_type, event.version, xid, position,
                    event.event_type, event.schema_version, batch.datas[i], batch.metas[i],
                    event.recorded_at,
                )  # fmt: skip
                log.rows.append(row)
                log.stream_rows[stream_id].append(row)
                recorded.append(event)
            log.streams[stream_id] = attrs.evolve(info, version=info.version + len(batch.ids))
            last = recorded[-1]
            return AppendResult(
                stream_id, last.version, last.position, len(batch.ids), tuple(recorded)
            )

        return self._run(executor, run)

    def append_many(
        self,
        executor: Any,
        appends: Sequence[StreamAppend],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[AppendResult]:
        """Same contract as :meth:`EventStore.append_many`: every check first, then all."""
        items = check_appends(appends, "append_many", self.settings)
        for item in items:
            check_expected(item.expected_version)
            encode_batch(  # refuse bad input before anything is written
                self.codec, self.settings, item.events, metadata, stream_type=item.stream_type
            )

        def run(tx: MemoryTransaction) -> list[AppendResult]:
            refusals: dict[str, errors.CqrsError] = {}
            for item in items:
                info = tx.log.streams.get(item.stream_id)
                actual = None if info is None else info.version
                if not holds(item.expected_version, actual) or (
                    info is not None and info.archived and item.events
                ):
                    refusals[item.stream_id] = _refused(item.stream_id, item.expected_version, info)
            if len(refusals) == 1:
                raise next(iter(refusals.values()))
            if refusals:
                raise errors.AppendRefused(refusals)
            shared = dict(metadata or {})
            return [
                self.append(
                    tx, item.stream_id, item.events, expected_version=item.expected_version,
                    stream_type=item.stream_type, metadata={**shared, **item.metadata},
                )
                for item in items
            ]  # fmt: skip

        return self._run(executor, run)

    def archive(self, executor: Any, stream_id: str, *, archived: bool = True) -> None:
        """Mark a stream archived (it takes no more events) or take the mark off."""
        validation.check_archive(stream_id, archived, self.settings)

        def run(tx: MemoryTransaction) -> None:
            info = tx.log.streams.get(stream_id)
            if info is None:
                raise errors.StreamNotFound(stream_id)
            tx.touch(stream_id)
            tx.log.streams[stream_id] = attrs.evolve(info, archived=archived)

        self._run(executor, run)

    # -- reading -------------------------------------------------------------

    def stream_info(self, executor: Any, stream_id: str) -> StreamInfo | None:
        """The stream's row, or ``None`` when it does not exist."""
        validation.check_stream_id_to_read(stream_id, self.settings)
        return self._run(executor, lambda tx: tx.log.streams.get(stream_id))

    def read_stream(
        self,
        executor: Any,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent[Event]]:
        """Same contract as :meth:`EventStore.read_stream`."""
        validation.check_read_stream(stream_id, from_version, to_version, self.settings)

        def run(tx: MemoryTransaction) -> list[EventRow]:
            rows = tx.log.stream_rows.get(stream_id)
            if rows is None:
                raise errors.StreamNotFound(stream_id)
            hi = to_version if to_version is not None else len(rows)
            return [r for r in rows if from_version <= r.version <= hi]

        return [self.decode(row) for row in self._run(executor, run)]

    def read_all(
        self,
        executor: Any,
        *,
        after: Position = START,
        limit: int = 1000,
        types: Iterable[str] | None = None,
    ) -> list[RecordedEvent[Event]]:
        """Same contract as :meth:`EventStore.read_all`: committed events after ``after``."""
        checked = validation.check_read_all(after, limit, types, self.settings)
        wanted = None if checked is None else set(checked)

        def run(tx: MemoryTransaction) -> list[EventRow]:
            found: list[EventRow] = []
            for row in tx.log.rows:
                if len(found) >= limit:
                    break
                if row.xid == tx.xid or row.position <= after:
                    continue
                if wanted is None or row.event_type in wanted:
                    found.append(row)
            return found

        return [self.decode(row) for row in self._run(executor, run)]

    def head(self, executor: Any) -> Position:
        """The position of the newest event written (committed or not)."""

        def run(tx: MemoryTransaction) -> Position:
            rows = tx.log.rows
            return START if not rows else rows[-1].position

        return self._run(executor, run)

    def horizon(self, executor: Any) -> int:
        """The oldest transaction id still running (or the next one to be given out)."""
        return self._run(executor, lambda tx: tx.xid if tx.xid is not None else tx.log.next_xid)

    def decode(self, row: EventRow) -> RecordedEvent[Event]:
        """Decode a stored row; payloads are parsed afresh each read, as from ``jsonb``."""
        return decode_row(self.codec, row)

    def check_stream_id(self, stream_id: object) -> None:
        """Raise :class:`~cqrs.errors.InvalidStreamId` unless ``stream_id`` is usable."""
        check_stream_id(stream_id, self.settings)

    # -- plumbing ------------------------------------------------------------

    def _run(self, executor: Any, fn: Callable[[MemoryTransaction], T]) -> T:
        if isinstance(executor, MemoryTransaction):
            if executor.log is not self.log:
                raise errors.InvalidInput("this MemoryTransaction belongs to another MemoryLog")
            if not executor.open:
                raise errors.InvalidInput("this MemoryTransaction has already ended")
            return fn(executor)
        with self.log.transaction() as tx:
            return fn(tx)


def _refused(stream_id: str, expected: Expected, info: StreamInfo | None) -> errors.CqrsError:
    if info is not None and info.archived:
        return errors.StreamArchived(stream_id)
    return errors.ConcurrencyError(stream_id, expected, None if info is None else info.version)


def _already_appended(log: MemoryLog, stream_id: str, ids: list[uuid.UUID]) -> AppendResult | None:
    wanted = set(ids)
    found = [r for r in log.stream_rows.get(stream_id, ()) if r.event_id in wanted]
    if not found:
        return None
    if len(found) != len(ids):
        raise errors.DuplicateEventError(stream_id, sorted(str(r.event_id) for r in found))
    last = max(found, key=lambda r: r.version)
    return AppendResult(stream_id, last.version, last.position, 0)
