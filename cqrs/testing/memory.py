"""Public: ``InMemoryEventStore``, a test double of ``EventStore`` with the same API and errors.

It validates, encodes and decodes exactly like the PostgreSQL store (it reuses
its code for that), keeps the same expected-version semantics and passes the
same conformance suite (``cqrs.testing.conformance``). Transactions are
serialised by one lock: a :class:`MemoryTransaction` holds it from begin to
commit or rollback, so readers only ever see committed events.

    >>> store = InMemoryEventStore(registry)                        # doctest: +SKIP
    >>> with store.transaction() as tx:                             # doctest: +SKIP
    ...     store.append(tx, "order-1", [OrderPlaced("order-1")], expected_version=NO_STREAM)
    >>> store.read_stream(None, "order-1")[0].version               # doctest: +SKIP
    1

Any executor other than a :class:`MemoryTransaction` of the same log (a
``Session``, ``None``, ...) makes the call its own committed transaction.
"""

from __future__ import annotations

import json
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
from cqrs.events.registry import EventRegistry
from cqrs.store import validation
from cqrs.store.event_store import EventStore, StreamInfo, default_stream_type
from cqrs.store.expected import ANY, AppendResult, Expected, holds

__all__ = ["InMemoryEventStore", "MemoryLog", "MemoryTransaction"]

T = TypeVar("T")
Row = tuple[Any, ...]
"""A stored event shaped like a row of ``cqrs.store.sql``'s reads, JSON kept as text."""

_VERSION = 3  # index of ``version`` in a Row


class MemoryLog:
    """The state behind one or more ``InMemoryEventStore``: streams, events, one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None
        self.streams: dict[str, StreamInfo] = {}
        self.stream_rows: dict[str, list[Row]] = {}
        self.rows: list[Row] = []
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


class InMemoryEventStore(EventStore):
    """``EventStore`` over a :class:`MemoryLog` instead of PostgreSQL.

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
        super().__init__(registry, settings, codec)
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
        expected = self._check_expected(expected_version)
        events = validation.check_append(
            events, self.settings, stream_type=stream_type, metadata=metadata
        )
        batch = self._encode(events, metadata)
        validation.check_event_types(batch.types, self.settings)
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
                row: Row = (
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

        def run(tx: MemoryTransaction) -> list[Row]:
            rows = tx.log.stream_rows.get(stream_id)
            if rows is None:
                raise errors.StreamNotFound(stream_id)
            hi = to_version if to_version is not None else len(rows)
            return [r for r in rows if from_version <= r[_VERSION] <= hi]

        return [self.decode(_thaw(row)) for row in self._run(executor, run)]

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

        def run(tx: MemoryTransaction) -> list[Row]:
            found: list[Row] = []
            for row in tx.log.rows:
                if len(found) >= limit:
                    break
                if row[4] == tx.xid or Position(row[4], row[5]) <= after:
                    continue
                if wanted is None or row[6] in wanted:
                    found.append(row)
            return found

        return [self.decode(_thaw(row)) for row in self._run(executor, run)]

    def head(self, executor: Any) -> Position:
        """The position of the newest event written (committed or not)."""

        def run(tx: MemoryTransaction) -> Position:
            rows = tx.log.rows
            return START if not rows else Position(rows[-1][4], rows[-1][5])

        return self._run(executor, run)

    def horizon(self, executor: Any) -> int:
        """The oldest transaction id still running (or the next one to be given out)."""
        return self._run(executor, lambda tx: tx.xid if tx.xid is not None else tx.log.next_xid)

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
    found = [r for r in log.stream_rows.get(stream_id, ()) if r[0] in wanted]
    if not found:
        return None
    if len(found) != len(ids):
        raise errors.DuplicateEventError(stream_id, sorted(str(r[0]) for r in found))
    last = max(found, key=lambda r: r[_VERSION])
    return AppendResult(stream_id, last[_VERSION], Position(last[4], last[5]), 0)


def _thaw(row: Row) -> Row:
    """The row as ``decode`` takes it: fresh dicts on every read, as from ``jsonb``."""
    return (*row[:8], json.loads(row[8]), json.loads(row[9]), row[10])
