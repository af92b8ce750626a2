"""Public: ``EventStore``, appends and reads on the PostgreSQL event log.

Every method takes the caller's ``Session`` or ``Connection`` and works inside
its transaction: the caller commits, so events, read models and anything else
the service writes commit together or not at all.

    >>> store = EventStore()
    >>> with Session(engine) as session, session.begin():          # doctest: +SKIP
    ...     store.append(session, "order-1", [OrderPlaced("order-1", "c-1", Decimal(5))],
    ...                  expected_version=NO_STREAM)
    AppendResult(stream_id='order-1', version=1, position=Position(...), appended=1)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import Connection, TextualSelect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cqrs import errors
from cqrs.config import Settings
from cqrs.events.codec import EventCodec
from cqrs.events.model import START, Event, NewEvent, Position, RecordedEvent
from cqrs.events.registry import EventRegistry, default_registry
from cqrs.store import driver, horizon, sql, validation
from cqrs.store.encoding import EncodedBatch, encode_batch
from cqrs.store.expected import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, Expected, holds
from cqrs.store.expected import check as check_expected
from cqrs.store.rows import decode_row

Executor = Session | Connection


@attrs.frozen
class StreamInfo:
    """A stream's row in ``streams``."""

    stream_id: str
    stream_type: str
    version: int
    created_at: datetime
    archived: bool


def connection_of(executor: Executor) -> Connection:
    """The ``Connection`` behind a ``Session`` (joining its transaction) or itself."""
    return executor.connection() if isinstance(executor, Session) else executor


def default_stream_type(stream_id: str) -> str:
    """``'order-17'`` -> ``'order'``: the category before the first dash."""
    return stream_id.split("-", 1)[0]


class EventStore:
    """Append to and read from the event log.

    ``registry`` maps stored type names to event classes (the one ``@event``
    fills by default); ``settings`` carries the input limits.
    """

    def __init__(
        self,
        registry: EventRegistry | None = None,
        settings: Settings | None = None,
        codec: EventCodec | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.codec = codec or EventCodec(registry or default_registry)

    # -- writing -------------------------------------------------------------

    def append(
        self,
        executor: Executor,
        stream_id: str,
        events: Sequence[Event | NewEvent[Event]],
        *,
        expected_version: Expected = ANY,
        stream_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id``: all of them or none.

        ``expected_version`` is ``ANY``, ``NO_STREAM`` (or ``0``),
        ``STREAM_EXISTS`` or the exact current version; a mismatch raises
        :class:`~cqrs.errors.ConcurrencyError` and writes nothing. Events
        wrapped in :class:`NewEvent` with ids already in the stream make the
        call an idempotent no-op. ``metadata`` is merged into every event's
        own metadata (correlation and causation ids go here).
        """
        self.check_stream_id(stream_id)
        expected = check_expected(expected_version)
        batch = encode_batch(self.codec, self.settings, events, metadata)
        conn = connection_of(executor)
        if not batch.ids:
            return self._empty_append(conn, stream_id, expected)
        if batch.explicit_ids:
            done = self._already_appended(conn, stream_id, batch.ids)
            if done is not None:
                return done
        params: dict[str, Any] = {
            "sid": stream_id,
            "stype": stream_type or default_stream_type(stream_id),
            "n": len(batch.ids),
            "expected": expected if isinstance(expected, int) else None,
        }
        if expected is ANY:
            mode = "any"
        elif expected is STREAM_EXISTS:
            mode = "existing"
        elif expected == 0 or expected is NO_STREAM:
            mode = "new"
        else:
            mode = "exact"
        statement = self._append_statement(mode, batch, params)
        try:
            returned = driver.rows(conn, statement, params)
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state == "23514" and "partition" in str(exc.orig):
                raise errors.PartitionMissing(str(exc.orig).splitlines()[0]) from exc
            if state in ("40001", "40P01"):
                raise errors.TransactionConflict(stream_id, expected, state) from exc
            raise
        if not returned:
            raise self._append_refused(conn, stream_id, expected)
        returned = sorted(returned, key=lambda r: r[2])
        recorded = tuple(
            RecordedEvent(
                event_id, stream_id, stype, version, Position(int(xid), gpos), batch.types[i],
                batch.schema_versions[i], batch.events[i], batch.metadata[i], at,
            )
            for i, (gpos, xid, version, event_id, at, stype) in enumerate(returned)
        )  # fmt: skip
        last = recorded[-1]
        return AppendResult(stream_id, last.version, last.position, len(returned), recorded)

    @staticmethod
    def _append_statement(mode: str, batch: EncodedBatch, params: dict[str, Any]) -> TextualSelect:
        """The append statement for ``mode`` and the batch's shape; fills in its parameters."""
        if len(batch.ids) == 1:
            params.update(
                id=batch.ids[0], type=batch.types[0], sv=batch.schema_versions[0],
                data=batch.datas[0], meta=batch.metas[0],
            )  # fmt: skip
            return sql.APPEND_ONE[mode]
        params.update(ids=batch.ids, types=batch.types, svs=batch.schema_versions)
        chars = sum(map(len, batch.datas)) + sum(map(len, batch.metas))
        if chars > sql.JSON_ARRAY_LIMIT:
            params.update(datas=batch.datas, metas=batch.metas)
            return sql.APPEND_HUGE[mode]
        params.update(datas=f"[{','.join(batch.datas)}]", metas=f"[{','.join(batch.metas)}]")
        return sql.APPEND_MANY[mode]

    def archive(self, executor: Executor, stream_id: str, *, archived: bool = True) -> None:
        """Mark a stream archived (it takes no more events) or take the mark off."""
        row = connection_of(executor).execute(
            sql.SET_ARCHIVED, {"sid": stream_id, "archived": archived}
        )
        if row.first() is None:
            raise errors.StreamNotFound(stream_id)

    # -- reading -------------------------------------------------------------

    def stream_info(self, executor: Executor, stream_id: str) -> StreamInfo | None:
        """The stream's row, or ``None`` when it does not exist."""
        row = connection_of(executor).execute(sql.STREAM_INFO, {"sid": stream_id}).first()
        return None if row is None else StreamInfo(*row)

    def read_stream(
        self,
        executor: Executor,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent[Event]]:
        """The stream's events from ``from_version`` to ``to_version`` (inclusive), in order.

        Raises :class:`~cqrs.errors.StreamNotFound` when the stream does not exist.
        """
        conn = connection_of(executor)
        params = {
            "sid": stream_id,
            "lo": from_version,
            "hi": validation.INT32_MAX if to_version is None else to_version,
        }
        rows = driver.rows(conn, sql.READ_STREAM, params)
        if not rows and self.stream_info(conn, stream_id) is None:
            raise errors.StreamNotFound(stream_id)
        return [self.decode(row) for row in rows]

    def read_all(
        self,
        executor: Executor,
        *,
        after: Position = START,
        limit: int = 1000,
        types: Iterable[str] | None = None,
    ) -> list[RecordedEvent[Event]]:
        """Committed events after ``after`` in log order, at most ``limit`` of them.

        Never skips an event and never returns one twice, however transactions
        interleave: events of a transaction become readable once every
        transaction that started before it has ended (see docs/architecture.md).
        Pass the last event's ``position`` as ``after`` to read on.
        """
        params: dict[str, Any] = {
            "xid": str(after.transaction_id),
            "pos": after.global_position,
            "lim": limit,
        }
        statement = sql.READ_ALL
        if types is not None:
            params["types"] = list(types)
            statement = sql.READ_ALL_TYPES
        rows = connection_of(executor).execute(statement, params).all()
        return [self.decode(row) for row in rows]

    def head(self, executor: Executor) -> Position:
        """The position of the newest event written (committed or not yet readable)."""
        row = connection_of(executor).execute(sql.HEAD).first()
        return START if row is None else Position(int(row[0]), row[1])

    def horizon(self, executor: Executor) -> int:
        """The oldest transaction id still running that can write this database's log.

        ``read_all`` sees only events of older transactions (``cqrs.store.horizon``).
        """
        return horizon.horizon(connection_of(executor))

    def decode(self, row: Sequence[Any]) -> RecordedEvent[Event]:
        """Turn a row selected as :class:`~cqrs.store.rows.EventRow` into a ``RecordedEvent``."""
        return decode_row(self.codec, row)

    # -- input checks --------------------------------------------------------

    def check_stream_id(self, stream_id: object) -> None:
        """Raise :class:`~cqrs.errors.InvalidStreamId` unless ``stream_id`` is usable."""
        validation.check_stream_id(stream_id, self.settings)

    # -- slow paths ----------------------------------------------------------

    def _already_appended(
        self, conn: Connection, stream_id: str, ids: list[uuid.UUID]
    ) -> AppendResult | None:
        """With caller-chosen ids: ``AppendResult`` if all are stored, ``None`` if none are."""
        conn.execute(sql.LOCK_STREAM_KEY, {"sid": stream_id})
        found = conn.execute(sql.FIND_EVENT_IDS, {"sid": stream_id, "ids": ids}).all()
        if not found:
            return None
        if len(found) != len(ids):
            raise errors.DuplicateEventError(stream_id, sorted(str(r[0]) for r in found))
        last = max(found, key=lambda r: r[1])
        return AppendResult(stream_id, last[1], Position(int(last[2]), last[3]), 0)

    def _append_refused(
        self, conn: Connection, stream_id: str, expected: Expected
    ) -> errors.CqrsError:
        row = conn.execute(sql.REFUSAL, {"sid": stream_id}).first()
        if row is None:
            return errors.ConcurrencyError(stream_id, expected, None)
        version, archived, newer, last_xid, own_xid = row
        if archived:
            return errors.StreamArchived(stream_id)
        if newer and holds(expected, version):
            return errors.AppendOrderConflict(stream_id, expected, int(own_xid), int(last_xid))
        return errors.ConcurrencyError(stream_id, expected, version)

    def _empty_append(self, conn: Connection, stream_id: str, expected: Expected) -> AppendResult:
        info = self.stream_info(conn, stream_id)
        actual = None if info is None else info.version
        if not holds(expected, actual):
            raise self._append_refused(conn, stream_id, expected)
        return AppendResult(stream_id, actual or 0, self.head(conn), 0)
