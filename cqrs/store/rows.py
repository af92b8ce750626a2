"""Internal: the one shape of an event row, from the SQL that selects it to ``RecordedEvent``.

Every reader of the log (``EventStore.read_stream`` and ``read_all``, the
projection runner's batch, dead-letter replay, the relay, the in-memory
store) selects these columns in this order and turns a row into a
:class:`~cqrs.events.model.RecordedEvent` through :func:`decode_row`. Adding a
column to ``events`` touches this module: a field of :class:`EventRow`, and
its SQL in ``_SELECTED`` when it is not selected as is.

    >>> select_list("e")
    'e.event_id, e.stream_id, e.stream_type, e.version, e.transaction_id AS xid, \
e.global_position, e.event_type, e.schema_version, e.data::text AS data, \
e.metadata::text AS metadata, e.recorded_at'
    >>> names("b")
    'b.event_id, b.stream_id, b.stream_type, b.version, b.xid, b.global_position, \
b.event_type, b.schema_version, b.data, b.metadata, b.recorded_at'
"""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
from sqlalchemy import ColumnClause, column

from cqrs.events.model import Event, Position, RecordedEvent
from cqrs.events.strict import slot_setters

if TYPE_CHECKING:
    from cqrs.events.codec import EventCodec


class EventRow(NamedTuple):
    """One stored event as the log's readers select it.

    ``xid`` is the transaction id: an ``int`` from the store's own cursor
    (``cqrs.store.driver`` loads ``xid8`` as an integer) and in the in-memory
    store, text where psycopg's defaults load it; ``data`` and ``metadata``
    are JSON texts as selected (``_SELECTED``), or already parsed mappings.
    """

    event_id: uuid.UUID
    stream_id: str
    stream_type: str
    version: int
    xid: str | int
    global_position: int
    event_type: str
    schema_version: int
    data: Any
    metadata: Any
    recorded_at: datetime

    @property
    def position(self) -> Position:
        """The event's place in the log."""
        return Position(int(self.xid), self.global_position)


FIELDS: tuple[str, ...] = EventRow._fields

# The column of ``events`` behind a field, where the names differ.
_SOURCE = {"xid": "transaction_id"}

# How a field is selected, where not as is. The xid goes under another name, as
# ``xid8``, so an ORDER BY on the output name sorts by the id (a UNION can only
# sort by output names: cqrs.projections.sql.read_batch). The payloads go as
# text: json.loads on a str costs a fraction of psycopg's jsonb loader on bytes.
_SELECTED = {
    "xid": "{t}.transaction_id",
    "data": "{t}.data::text",
    "metadata": "{t}.metadata::text",
}

_PAYLOADS = ("data", "metadata")


def source_column(field: str) -> str:
    """The ``events`` column a field comes from (``'xid'`` -> ``'transaction_id'``)."""
    return _SOURCE.get(field, field)


def table_columns(alias: str) -> str:
    """The stored columns behind the fields, unconverted, for an inner query on ``alias``."""
    return ", ".join(f"{alias}.{source_column(f)}" for f in FIELDS)


def select_list(alias: str = "events", *, payload_if: str | None = None) -> str:
    """The select list of an event row read from ``alias`` (``events`` or a sub-query
    of its stored columns); with ``payload_if``, payloads are NULL where it is false."""
    parts = []
    for field in FIELDS:
        expr = _SELECTED.get(field, "{t}." + field).format(t=alias)
        if payload_if is not None and field in _PAYLOADS:
            expr = f"CASE WHEN {payload_if} THEN {expr} END"
        parts.append(expr if expr == f"{alias}.{field}" else f"{expr} AS {field}")
    return ", ".join(parts)


def names(alias: str | None = None) -> str:
    """The fields by name, optionally qualified (an outer query over ``select_list``)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + f for f in FIELDS)


def result_columns() -> list[ColumnClause[Any]]:
    """The fields as untyped result columns, for ``TextClause.columns``."""
    return [column(f) for f in FIELDS]


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a page of rows is decoded, if it was on.

    Decoding creates no reference cycles, only objects that stay alive until the
    caller drops the page, so the collector has nothing to find there; but each
    thousand of those objects triggers a collection, and their promotion brings
    on full ones that walk every object of the process (a large application
    paid several microseconds an event for them). The pause is per page
    (at most ``Settings.max_read_limit`` rows), and a collector another thread
    or the application turned off stays off.

    A projection batch keeps it off from its read to its commit (``run_batch``):
    the rows it writes are made from the page, and once the batch returns its
    objects are freed by reference counting, which also takes back the
    allocation count that would trigger the next collection. Cycles made
    meanwhile (by a handler's ORM session, or another thread) wait for the
    first collection after the batch.

    >>> import gc
    >>> with gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    >>> gc.disable()
    >>> with gc_paused():
    ...     pass
    >>> gc.isenabled()
    False
    >>> gc.enable()
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_new = object.__new__
_RECORDED = slot_setters(RecordedEvent, list(attrs.fields_dict(RecordedEvent)))
_POSITION = slot_setters(Position, list(attrs.fields_dict(Position)))
assert _RECORDED is not None and _POSITION is not None, "RecordedEvent, Position: plain attrs"
(_set_event_id, _set_stream_id, _set_stream_type, _set_version, _set_position, _set_event_type,
 _set_schema_version, _set_event, _set_metadata, _set_recorded_at) = _RECORDED  # fmt: skip
_set_transaction_id, _set_global_position = _POSITION


def decode_row(codec: EventCodec, row: Sequence[Any]) -> RecordedEvent[Event]:
    """Turn a row in :class:`EventRow`'s order (a tuple, a SQLAlchemy ``Row`` or an
    ``EventRow``) into a ``RecordedEvent``, decoding the payload with ``codec``.

    A row that cannot be read raises :class:`~cqrs.errors.EventDecodeError` with
    its stream, version and position: JSON that does not parse here (a number
    of thousands of digits, nesting too deep), metadata that is not an object,
    or a payload the codec refuses."""
    values: Any = row  # unpacks like a tuple; no copy on the read path
    (event_id, stream_id, stream_type, version, xid, gpos, etype, sv, data, meta, at) = values
    # Position and RecordedEvent slot by slot (strict.slot_setters): the attrs
    # __init__ costs about twice as much, a fifth of reading an event. The Position
    # is made here, inline, before decoding: errors carry it.
    position = _new(Position)
    _set_transaction_id(position, xid if type(xid) is int else int(xid))
    _set_global_position(position, gpos)
    try:
        if type(data) is str:
            data = loads(data)
        if type(meta) is str:
            meta = loads(meta)
    except (ValueError, RecursionError) as exc:  # numbers too long, nesting too deep
        raise codec.unreadable(
            etype, f"its JSON does not parse here ({type(exc).__name__}: {exc})",
            stream_id=stream_id, version=version, position=position,
        ) from None  # fmt: skip
    if type(meta) is not dict:
        raise codec.unreadable(
            etype, "its metadata is not a JSON object",
            stream_id=stream_id, version=version, position=position,
        )  # fmt: skip
    known = codec.current.get(etype) if codec.current_at == codec.registry.changes else None
    event = None
    if known is not None and known[0] == sv and type(data) is dict:
        try:
            event = known[1](data)
        except Exception:
            event = None  # the full path below raises the error that says where and why
    if event is None:
        event = codec.decode(
            etype, sv, data, stream_id=stream_id, position=position, version=version
        )
    return recorded(event_id, stream_id, stream_type, version, position, etype, sv, event, meta, at)


def position_of(xid: str | int, global_position: int) -> Position:
    """``Position(int(xid), global_position)``, slot by slot."""
    position = _new(Position)
    _set_transaction_id(position, int(xid))
    _set_global_position(position, global_position)
    return position


def recorded(
    event_id: uuid.UUID,
    stream_id: str,
    stream_type: str,
    version: int,
    position: Position,
    event_type: str,
    schema_version: int,
    event: Event,
    metadata: Any,
    recorded_at: datetime,
) -> RecordedEvent[Event]:
    """``RecordedEvent(...)`` with the same arguments, slot by slot (the attrs
    ``__init__`` costs about twice as much): ``decode_row`` and an append's results
    build every event they return through it."""
    made: RecordedEvent[Event] = _new(RecordedEvent)
    _set_event_id(made, event_id)
    _set_stream_id(made, stream_id)
    _set_stream_type(made, stream_type)
    _set_version(made, version)
    _set_position(made, position)
    _set_event_type(made, event_type)
    _set_schema_version(made, schema_version)
    _set_event(made, event)
    _set_metadata(made, metadata)
    _set_recorded_at(made, recorded_at)
    return made


def recorded_from(row: EventRow, event: Event, metadata: Any) -> RecordedEvent[Event]:
    """A ``RecordedEvent`` of ``row`` carrying ``event`` (decoded elsewhere) and ``metadata``."""
    return RecordedEvent(
        row.event_id, row.stream_id, row.stream_type, row.version, row.position,
        row.event_type, row.schema_version, event, metadata, row.recorded_at,
    )  # fmt: skip


_scan_json: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(text: str) -> Any:
    """Parse a JSON text PostgreSQL printed (valid, no surrounding blanks).

    ``json.loads`` checks for blanks around the document with two regular
    expressions; the scanner alone is half the cost, and an empty object
    (most events' metadata) skips it.

    >>> loads('{"a": [1, 2.5]}'), loads("{}")
    ({'a': [1, 2.5]}, {})
    """
    if text == "{}":
        return {}
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)  # raises JSONDecodeError with the position
    return value if end == len(text) else json.loads(text)
