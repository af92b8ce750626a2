"""Public: ``EventStore``, appends and reads on the PostgreSQL event log.

Every method takes the caller's ``Session`` or ``Connection`` and works inside
its transaction: the caller commits, so events, read models and anything else
the service writes commit together or not at all.

    >>> store = EventStore()
    >>> with Session(engine) as session, session.begin():
    ...     store.append(session, "order-1", [OrderPlaced("order-1", "c-1", Decimal(5))],
    ...                  expected_version=NO_STREAM)
    AppendResult(stream_id='order-1', version=1, position=Position(...), appended=1, ...)
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
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
from cqrs.store import arrays, bulk, driver, horizon, no_append, sql, validation
from cqrs.store.consistency import inconsistency
from cqrs.store.encoding import EncodedBatch, encode_batch
from cqrs.store.expected import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Expected,
    StreamAppend,
    check_appends,
    holds,
)
from cqrs.store.expected import check as check_expected
from cqrs.store.rows import decode_row, gc_paused, position_of, recorded

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
        batch = encode_batch(self.codec, self.settings, events, metadata, stream_type=stream_type)
        validation.check_version_room(stream_id, expected, len(batch.ids))
        return self._append_batch(connection_of(executor), stream_id, expected, batch, stream_type)

    def append_many(
        self,
        executor: Executor,
        appends: Sequence[StreamAppend],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[AppendResult]:
        """Append to several streams in one statement: all of them or none.

        Each :class:`~cqrs.store.expected.StreamAppend` carries its stream's
        events and expected version; every expectation is checked before
        anything is written, and when any fails the call raises that stream's
        error, or :class:`~cqrs.errors.AppendRefused` listing every refused
        stream, having written nothing. ``metadata`` is merged into every event.
        Returns one ``AppendResult`` per append, in order. A unit of work that
        touched several aggregates saves them through this method::

            store.append_many(session, [
                StreamAppend("order-1", [OrderPlaced(...)], expected_version=NO_STREAM),
                StreamAppend("stock-7", [StockReserved(...)], expected_version=12),
            ])
        """
        items = check_appends(appends, "append_many", self.settings)
        validation.check_metadata(metadata, self.settings)
        shared = dict(metadata or {})
        batches = [
            encode_batch(
                self.codec, self.settings, a.events, {**shared, **a.metadata},
                stream_type=a.stream_type,
            )
            for a in items
        ]  # fmt: skip
        expecteds = [check_expected(a.expected_version) for a in items]
        for a, e, b in zip(items, expecteds, batches, strict=True):
            validation.check_version_room(a.stream_id, e, len(b.ids))
        conn = connection_of(executor)
        results: list[AppendResult | None] = [None] * len(items)
        for i, (a, b) in enumerate(zip(items, batches, strict=True)):
            if not b.ids:  # checks only: before anything is written
                results[i] = self._empty_append(conn, a.stream_id, expecteds[i])
        full = [i for i, batch in enumerate(batches) if batch.ids]
        if len(full) > 1 and not self._stream_by_stream([batches[i] for i in full]):
            self._append_streams(conn, full, items, expecteds, batches, results)
        else:
            # one stream, or idempotent re-sends or huge payloads: the one-stream append
            # each, several kept all-or-nothing by a savepoint
            with driver.atomic(conn), conn.begin_nested() if len(full) > 1 else nullcontext():
                for i in full:
                    results[i] = self._append_batch(
                        conn, items[i].stream_id, expecteds[i], batches[i], items[i].stream_type
                    )
        return [r for r in results if r is not None]

    @staticmethod
    def _stream_by_stream(batches: Sequence[EncodedBatch]) -> bool:
        """Whether these batches need the one-stream append each: caller-chosen ids (a
        re-send is checked per stream) or payloads too big for one JSON document."""
        chars = sum(sum(map(len, b.datas)) + sum(map(len, b.metas)) for b in batches)
        return chars > sql.JSON_ARRAY_LIMIT or any(b.explicit_ids for b in batches)

    def _append_streams(
        self,
        conn: Connection,
        full: Sequence[int],
        items: Sequence[StreamAppend],
        expecteds: Sequence[Expected],
        batches: Sequence[EncodedBatch],
        results: list[AppendResult | None],
    ) -> None:
        """``sql.APPEND_STREAMS`` for the appends at ``full``; fills in their ``results``."""
        chosen = [items[i] for i in full]
        expected = [expecteds[i] for i in full]
        params = _many_params(chosen, expected, [batches[i] for i in full])
        try:
            returned = driver.rows(conn, sql.APPEND_STREAMS, params, prepare=_prepare(chosen))
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state == "22P02" and "cqrs-torn-append" in str(exc.orig):
                raise errors.AppendRefused({}, torn=True) from exc
            raise self._append_error(exc, chosen[0].stream_id, expected[0]) from exc
        if not returned:
            raise self._refused_many(conn, chosen, expected)
        by_stream: dict[str, list[tuple[Any, ...]]] = {}
        for row in returned:
            by_stream.setdefault(row[5], []).append(row)
        parse = driver.timestamptz_parser(conn)
        for i in full:
            rows = sorted(by_stream[items[i].stream_id], key=lambda r: r[2])
            results[i] = _result(items[i].stream_id, batches[i], rows, parse)

    def import_streams(self, executor: Executor, appends: Sequence[StreamAppend]) -> int:
        """Bulk-import new streams with one ``INSERT`` and one ``COPY``; returns the event count.

        For migrations and replays into a fresh log: every stream must be new
        (``ANY`` or ``NO_STREAM``); existing ones are reported before anything
        is written (``ConcurrencyError``, or ``AppendRefused`` for several).
        Events get their log positions in input order, in the caller's
        transaction, and inline projections are not run. Several times the
        rate of ``append_many`` for large imports (``docs/benchmarks.md``)::

            store.import_streams(session, [
                StreamAppend(f"order-{n}", events_of(n)) for n in range(10_000)
            ])
        """
        items = check_appends(appends, "import_streams", self.settings)
        conn = connection_of(executor)
        with driver.atomic(conn):  # an INSERT and a COPY
            return bulk.import_streams(conn, self.codec, self.settings, items, default_stream_type)

    def _append_batch(
        self,
        conn: Connection,
        stream_id: str,
        expected: Expected,
        batch: EncodedBatch,
        stream_type: str | None,
    ) -> AppendResult:
        """The one-stream append of an encoded, checked batch."""
        if not batch.ids:
            return self._empty_append(conn, stream_id, expected)
        # Caller-chosen ids: a lock, a look-up, then the append, as one transaction.
        with driver.atomic(conn) if batch.explicit_ids else nullcontext():
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
            statement = self._append_statement(_mode(expected), batch, params)
            try:
                returned = driver.rows(conn, statement, params)
            except DBAPIError as exc:
                raise self._append_error(exc, stream_id, expected) from exc
            if not returned:
                refusal = self._append_refused(conn, stream_id, expected)
                raise validation.full_stream(refusal, stream_id, len(batch.ids))
            return _result(stream_id, batch, sorted(returned, key=lambda r: r[2]))

    @staticmethod
    def _append_error(exc: DBAPIError, stream_id: str, expected: Expected) -> Exception:
        """The typed error for a failed append statement, or ``exc`` itself."""
        state = getattr(exc.orig, "sqlstate", None)
        if state == "23514" and "partition" in str(exc.orig):
            return errors.PartitionMissing(str(exc.orig).splitlines()[0])
        if state in ("40001", "40P01"):
            return errors.TransactionConflict(stream_id, expected, state)
        return no_append.refusal(exc) or exc

    @staticmethod
    def _append_statement(mode: str, batch: EncodedBatch, params: dict[str, Any]) -> TextualSelect:
        """The append statement for ``mode`` and the batch's shape; fills in its parameters."""
        if len(batch.ids) == 1:
            params.update(
                id=batch.ids[0], type=batch.types[0], sv=batch.schema_versions[0],
                data=batch.datas[0], meta=batch.metas[0],
            )  # fmt: skip
            return sql.APPEND_ONE[mode]
        chars = sum(map(len, batch.datas)) + sum(map(len, batch.metas))
        if chars > sql.JSON_ARRAY_LIMIT:
            params.update(ids=batch.ids, types=batch.types, svs=batch.schema_versions)
            params.update(datas=batch.datas, metas=batch.metas)
            return sql.APPEND_HUGE[mode]
        params.update(
            ids=arrays.uuids(batch.ids),
            types=arrays.texts(batch.types),
            svs=arrays.ints(batch.schema_versions),
        )
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
        On a ``Connection`` outside a transaction (READ COMMITTED) the read begins
        none: it runs on its own (``cqrs.store.driver.standalone``).
        """
        validation.check_read_stream(stream_id, from_version, to_version, self.settings)
        conn = connection_of(executor)
        params = {
            "sid": stream_id,
            "lo": from_version,
            "hi": validation.INT32_MAX if to_version is None else to_version,
        }
        rows = driver.rows(conn, sql.READ_STREAM, params, read_only=True)
        if not rows and self.stream_info(conn, stream_id) is None:
            raise errors.StreamNotFound(stream_id)
        return self._decode_all(rows)

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
        1 to ``Settings.max_read_limit``. Like ``read_stream``, it begins no
        transaction on a ``Connection`` outside one (READ COMMITTED).
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
        # Binary results: the page's columns all load to the same values (driver.rows).
        conn = connection_of(executor)
        rows = driver.rows(conn, statement, params, binary=True, read_only=True)
        return self._decode_all(rows)

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

    def _decode_all(self, rows: Sequence[Sequence[Any]]) -> list[RecordedEvent[Event]]:
        """``decode`` of each row (one call less per event unless a subclass overrides it)."""
        with gc_paused():
            if type(self).decode is not EventStore.decode:
                return [self.decode(row) for row in rows]
            codec = self.codec
            return [decode_row(codec, row) for row in rows]

    # -- input checks --------------------------------------------------------

    def check_stream_id(self, stream_id: object) -> None:
        """Raise :class:`~cqrs.errors.InvalidStreamId` unless ``stream_id`` is usable
        (the rules: ``cqrs.store.validation.name_problem``)."""
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
        return self._explain(conn, stream_id, expected, row)

    def _explain(
        self, conn: Connection, stream_id: str, expected: Expected, row: Sequence[Any] | None
    ) -> errors.CqrsError:
        """The error for a refused append to ``stream_id``, from its ``REFUSAL`` row."""
        refusal = _refusal(stream_id, expected, row)
        if isinstance(refusal, errors.StreamArchived | errors.AppendOrderConflict):
            return refusal
        if row is not None and isinstance(expected, int):
            # A writer that counted events which repeat or skip versions would retry forever.
            broken = inconsistency(conn, stream_id, version=row[0], expected=expected)
            if broken is not None:
                return broken
        if refusal is None:  # the stream holds the expectation now: a retry will see it
            return errors.ConcurrencyError(stream_id, expected, None if row is None else row[0])
        return refusal

    def _refused_many(
        self, conn: Connection, items: Sequence[StreamAppend], expecteds: Sequence[Expected]
    ) -> errors.CqrsError:
        """Why ``append_many`` wrote nothing: each refused stream's own error."""
        found = conn.execute(sql.REFUSALS, {"sids": [a.stream_id for a in items]}).all()
        rows_by_id = {row[0]: row for row in found}
        refusals: dict[str, errors.CqrsError] = {}
        for item, expected in zip(items, expecteds, strict=True):
            found_row = rows_by_id.get(item.stream_id)
            row = None if found_row is None else tuple(found_row[1:])
            if _refusal(item.stream_id, expected, row) is not None:
                refusals[item.stream_id] = self._explain(conn, item.stream_id, expected, row)
        if len(refusals) == 1:
            return next(iter(refusals.values()))
        if not refusals:  # changed since the check: report the first, a retry sees it anew
            first = items[0]
            row = rows_by_id.get(first.stream_id)
            actual = None if row is None else row[1]
            return errors.ConcurrencyError(first.stream_id, expecteds[0], actual)
        return errors.AppendRefused(refusals)

    def _empty_append(self, conn: Connection, stream_id: str, expected: Expected) -> AppendResult:
        info = self.stream_info(conn, stream_id)
        actual = None if info is None else info.version
        if not holds(expected, actual):
            raise self._append_refused(conn, stream_id, expected)
        return AppendResult(stream_id, actual or 0, self.head(conn), 0)


def _mode(expected: Expected) -> str:
    """Which append statement tests ``expected``: ``any``, ``existing``, ``new``, ``exact``."""
    if expected is ANY:
        return "any"
    if expected is STREAM_EXISTS:
        return "existing"
    if expected == 0 or expected is NO_STREAM:
        return "new"
    return "exact"


# From this many streams in one call, APPEND_STREAMS goes unprepared (see _prepare).
_PLAN_EACH_FROM_STREAMS = 32


def _prepare(items: Sequence[StreamAppend]) -> bool | None:
    """psycopg's ``prepare`` for an ``APPEND_STREAMS`` over ``items``.

    Prepared, PostgreSQL runs the statement on a generic plan from its sixth
    use, blind to the arrays' sizes (it assumes 10 elements or 100). With many
    streams that plan ran at about 2/3 the events/s of one made for the call's
    own arrays, planning (about 0.5 ms) included: 50 streams of 10 or of 2
    events, 32 of 1 or 5. With few it is the faster (10 streams of 2, 5 of 20;
    even at 20).
    """
    return False if len(items) >= _PLAN_EACH_FROM_STREAMS else None


def _refusal(
    stream_id: str, expected: Expected, row: Sequence[Any] | None
) -> errors.CqrsError | None:
    """Why an append to ``stream_id`` was refused, from the stream's row as committed
    (version, archived, appended by a newer transaction?, last xid, own xid), or
    ``None`` when the row meets the expectation."""
    if row is None:
        return None if holds(expected, None) else errors.ConcurrencyError(stream_id, expected, None)
    version, archived, newer, last_xid, own_xid = row
    if archived:
        return errors.StreamArchived(stream_id)
    if newer and holds(expected, version):
        return errors.AppendOrderConflict(stream_id, expected, int(own_xid), int(last_xid))
    if not holds(expected, version):
        return errors.ConcurrencyError(stream_id, expected, version)
    return None


def _result(
    stream_id: str,
    batch: EncodedBatch,
    returned: Sequence[Any],
    parse_time: Callable[[str], datetime] | None = None,
) -> AppendResult:
    """The ``AppendResult`` of ``batch`` from the append's RETURNING rows (``sql._RETURNED``),
    in version order: the ``i``-th row is the batch's ``i``-th event. ``parse_time``
    turns their ``recorded_at`` into a datetime when they carry it as text.

    Its ``recorded`` events are built on first read (``AppendResult.deferred``):
    from the rows and the batch's own lists, which it keeps until then.
    """
    last = returned[-1]
    ids, types, versions, events, metadata = (
        batch.ids, batch.types, batch.schema_versions, batch.events, batch.metadata
    )  # fmt: skip

    def build() -> tuple[RecordedEvent[Event], ...]:
        return tuple(
            recorded(
                ids[i], stream_id, stype, version, position_of(xid, gpos), types[i],
                versions[i], events[i], metadata[i], at if parse_time is None else parse_time(at),
            )
            for i, (gpos, xid, version, at, stype, *_) in enumerate(returned)
        )  # fmt: skip

    position = position_of(last[1], last[0])
    return AppendResult.deferred(stream_id, last[2], position, len(returned), build)


def _many_params(
    items: Sequence[StreamAppend], expecteds: Sequence[Expected], batches: Sequence[EncodedBatch]
) -> dict[str, Any]:
    """The parameters of ``sql.APPEND_STREAMS``: a row per stream, a row per event.

    Streams go in ``stream_id`` order, so two calls creating the same new
    streams insert them in the same order and cannot deadlock; events keep
    the caller's order.
    """
    order = sorted(range(len(items)), key=lambda i: items[i].stream_id)
    texts, ints = arrays.texts, arrays.ints
    params: dict[str, Any] = {
        "sids": texts([items[i].stream_id for i in order]),
        "stypes": texts(
            [items[i].stream_type or default_stream_type(items[i].stream_id) for i in order]
        ),
        "ns": ints([len(batches[i].ids) for i in order]),
        "expecteds": ints([e if isinstance(e := expecteds[i], int) else None for i in order]),
        "modes": texts([_mode(expecteds[i]) for i in order]),
        "ids": arrays.uuids([i for b in batches for i in b.ids]),
        "esids": texts([a.stream_id for a, b in zip(items, batches, strict=True) for _ in b.ids]),
        "ks": "{" + ",".join([_counting(len(b.ids)) for b in batches]) + "}",
        "types": texts([t for b in batches for t in b.types]),
        "svs": ints([v for b in batches for v in b.schema_versions]),
    }
    params["datas"] = "[" + ",".join(d for b in batches for d in b.datas) + "]"
    params["metas"] = "[" + ",".join(m for b in batches for m in b.metas) + "]"
    return params


@functools.lru_cache(maxsize=256)
def _counting(n: int) -> str:
    """``'1,2,...,n'``: the versions within a stream of an ``n``-event append (the
    same few sizes come again and again; formatting them was a tenth of the params)."""
    return ",".join(map(str, range(1, n + 1)))
