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

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import Connection, Row, TextualSelect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cqrs import errors
from cqrs.config import Settings
from cqrs.events.codec import EventCodec
from cqrs.events.ids import uuid7
from cqrs.events.model import START, Event, NewEvent, Position, RecordedEvent
from cqrs.events.registry import EventRegistry, default_registry
from cqrs.store import driver, horizon, sql, validation
from cqrs.store.expected import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, Expected, holds

Executor = Session | Connection
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    """Parse a JSON text PostgreSQL printed (valid, no surrounding blanks).

    ``json.loads`` checks for blanks around the document with two regular
    expressions; the scanner alone is half the cost, and an empty object
    (most events' metadata) skips it.
    """
    if text == "{}":
        return {}
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)  # raises JSONDecodeError with the position
    return value if end == len(text) else json.loads(text)


INT32_MAX = 2**31 - 1


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
        expected = self._check_expected(expected_version)
        events = validation.check_append(
            events, self.settings, stream_type=stream_type, metadata=metadata
        )
        batch = self._encode(events, metadata)
        validation.check_event_types(batch.types, self.settings)
        validation.check_version_room(stream_id, expected, len(batch.ids))
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
            rows = driver.rows(conn, statement, params)
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state == "23514" and "partition" in str(exc.orig):
                raise errors.PartitionMissing(str(exc.orig).splitlines()[0]) from exc
            if state in ("40001", "40P01"):
                raise errors.TransactionConflict(stream_id, expected, state) from exc
            raise
        if not rows:
            refusal = self._append_refused(conn, stream_id, expected)
            raise validation.full_stream(refusal, stream_id, len(batch.ids))
        rows = sorted(rows, key=lambda r: r[2])
        recorded = tuple(
            RecordedEvent(
                event_id, stream_id, stype, version, Position(int(xid), gpos), batch.types[i],
                batch.schema_versions[i], batch.events[i], batch.metadata[i], at,
            )
            for i, (gpos, xid, version, event_id, at, stype) in enumerate(rows)
        )  # fmt: skip
        last = recorded[-1]
        return AppendResult(stream_id, last.version, last.position, len(rows), recorded)

    @staticmethod
    def _append_statement(mode: str, batch: _Batch, params: dict[str, Any]) -> TextualSelect:
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
        validation.check_archive(stream_id, archived, self.settings)
        row = connection_of(executor).execute(
            sql.SET_ARCHIVED, {"sid": stream_id, "archived": archived}
        )
        if row.first() is None:
            raise errors.StreamNotFound(stream_id)

    # -- reading -------------------------------------------------------------

    def stream_info(self, executor: Executor, stream_id: str) -> StreamInfo | None:
        """The stream's row, or ``None`` when it does not exist."""
        validation.check_stream_id_to_read(stream_id, self.settings)
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
        validation.check_read_stream(stream_id, from_version, to_version, self.settings)
        conn = connection_of(executor)
        params = {
            "sid": stream_id,
            "lo": from_version,
            "hi": INT32_MAX if to_version is None else to_version,
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
        Pass the last event's ``position`` as ``after`` to read on. ``limit`` is
        1 to ``Settings.max_read_limit``.
        """
        types = validation.check_read_all(after, limit, types, self.settings)
        params: dict[str, Any] = {
            "xid": str(after.transaction_id),
            "pos": after.global_position,
            "lim": limit,
        }
        statement = sql.READ_ALL
        if types is not None:
            params["types"] = types
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

    def decode(self, row: Row[Any] | tuple[Any, ...]) -> RecordedEvent[Event]:
        """Turn a row of the SQL in ``cqrs.store.sql`` into a ``RecordedEvent``."""
        values: Any = row  # a Row unpacks like a tuple; no copy on the read path
        (event_id, stream_id, stream_type, version, xid, gpos, etype, sv, data, meta, at) = values
        # Payloads are selected as text (see sql.EVENT_COLUMNS): json.loads on a str
        # costs a fraction of psycopg's jsonb loader on bytes.
        if type(data) is str:
            data = _loads(data)
        if type(meta) is str:
            meta = _loads(meta)
        event = self.codec.decode(etype, sv, data, stream_id=stream_id, position=gpos)
        return RecordedEvent(
            event_id, stream_id, stream_type, version, Position(int(xid), gpos), etype, sv,
            event, meta, at,
        )  # fmt: skip

    # -- input checks --------------------------------------------------------

    def check_stream_id(self, stream_id: object) -> None:
        """Raise :class:`~cqrs.errors.InvalidStreamId` unless ``stream_id`` is usable
        (the rules: ``cqrs.store.validation.name_problem``)."""
        validation.check_stream_id(stream_id, self.settings)

    @staticmethod
    def _check_expected(expected: object) -> Expected:
        if isinstance(expected, bool) or not isinstance(expected, (int, type(ANY))):
            raise errors.InvalidInput(
                f"expected_version must be an int >= 0 or ANY, NO_STREAM, STREAM_EXISTS; "
                f"got {expected!r}"
            )
        if isinstance(expected, int) and not 0 <= expected <= INT32_MAX:
            raise errors.InvalidInput(f"expected_version must be >= 0, got {expected}")
        return expected

    def _encode(
        self, events: Sequence[Event | NewEvent[Event]], metadata: Mapping[str, Any] | None
    ) -> _Batch:
        if isinstance(events, (Event, NewEvent)):
            raise errors.InvalidInput("append takes a list of events; wrap a single event in [ ]")
        batch = _Batch()
        shared = dict(metadata or {})
        limit = self.settings.max_payload_bytes
        for item in events:
            if isinstance(item, NewEvent):
                event, event_id, own = item.event, item.event_id, item.metadata
                batch.explicit_ids = True
                if not isinstance(event_id, uuid.UUID):
                    raise errors.InvalidInput(
                        f"NewEvent.event_id must be a uuid.UUID, got {event_id!r}; leave it out "
                        "for a fresh UUIDv7 or pass uuid.UUID(text)"
                    )
            elif isinstance(item, Event):
                event, event_id, own = item, uuid7(), {}
            else:
                raise errors.InvalidInput(
                    f"append got {item!r}; pass instances of @event classes or NewEvent"
                )
            name, version, data = self.codec.encode(event)
            meta = self.codec.encode_metadata({**shared, **own}) if (shared or own) else "{}"
            size = len(data.encode()) + len(meta.encode())
            if size > limit:
                raise errors.PayloadTooLarge(name, size, limit)
            batch.events.append(event)
            batch.metadata.append({**shared, **own})
            batch.ids.append(event_id)
            batch.types.append(name)
            batch.schema_versions.append(version)
            batch.datas.append(data)
            batch.metas.append(meta)
        if len(set(batch.ids)) != len(batch.ids):
            raise errors.InvalidInput("the same event id appears twice in one append")
        return batch

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


@attrs.define
class _Batch:
    ids: list[uuid.UUID] = attrs.Factory(list)
    events: list[Event] = attrs.Factory(list)
    metadata: list[dict[str, Any]] = attrs.Factory(list)
    types: list[str] = attrs.Factory(list)
    schema_versions: list[int] = attrs.Factory(list)
    datas: list[str] = attrs.Factory(list)
    metas: list[str] = attrs.Factory(list)
    explicit_ids: bool = False
