"""Internal: bulk imports of new streams through ``COPY`` (``EventStore.import_streams``).

An import (a migration from another system, a replay into a fresh database)
writes streams that do not exist yet, so it needs none of the append's
per-stream checks beyond "new": one ``INSERT`` of every stream row, then one
``COPY`` of every event. ``COPY`` leaves out ``global_position``,
``transaction_id`` and ``recorded_at``, which take their defaults as in an
append, in input order, so each stream's events are in version order in the
log and the import's events are contiguous (one transaction).

Nothing is written half-way: streams that already exist are found before
anything is written (the transaction stays usable); a stream created by a
concurrent transaction meanwhile makes the ``INSERT`` fail (the transaction is
aborted, and so is everything in it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from cqrs import errors
from cqrs.config import Settings
from cqrs.events.codec import EventCodec
from cqrs.store import no_append
from cqrs.store.encoding import EncodedBatch, encode_batch
from cqrs.store.expected import ANY, NO_STREAM, StreamAppend
from cqrs.store.no_append import GUARD

EXISTING = text(
    "SELECT stream_id, version FROM streams WHERE stream_id = ANY(CAST(:sids AS text[]))"
)
INSERT_STREAMS = text(
    "INSERT INTO streams (stream_id, stream_type, version, last_xid) "
    "SELECT sid, stype, n, pg_current_xact_id() FROM unnest(CAST(:sids AS text[]), "
    "CAST(:stypes AS text[]), CAST(:ns AS int[])) AS i(sid, stype, n) WHERE " + GUARD
)
COPY_EVENTS = (
    "COPY events (event_id, stream_id, stream_type, version, event_type, schema_version, "
    "data, metadata) FROM STDIN"
)


def import_streams(
    conn: Connection,
    codec: EventCodec,
    settings: Settings,
    appends: Sequence[StreamAppend],
    default_type: Callable[[str], str],
) -> int:
    """Write ``appends`` (new streams only) with one INSERT and one COPY; the event count."""
    items = list(appends)  # checked by EventStore.import_streams
    for item in items:
        if item.expected_version not in (ANY, NO_STREAM, 0):
            raise errors.InvalidInput(
                f"import_streams writes new streams only; stream {item.stream_id!r} expects "
                f"{item.expected_version}: use append_many for existing streams"
            )
    batches = [encode_batch(codec, settings, a.events, a.metadata) for a in items]
    pairs = [(a, b) for a, b in zip(items, batches, strict=True) if b.ids]
    if not pairs:
        return 0
    sids = [a.stream_id for a, _ in pairs]
    found = conn.execute(EXISTING, {"sids": sids}).all()
    if found:
        refusals: dict[str, errors.CqrsError] = {
            sid: errors.ConcurrencyError(sid, NO_STREAM, version) for sid, version in found
        }
        if len(refusals) == 1:
            raise next(iter(refusals.values()))
        raise errors.AppendRefused(refusals)
    stypes = [a.stream_type or default_type(a.stream_id) for a, _ in pairs]
    params = {"sids": sids, "stypes": stypes, "ns": [len(b.ids) for _, b in pairs]}
    try:
        conn.execute(INSERT_STREAMS, params)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23505":
            raise errors.AppendRefused({}, torn=True) from exc
        refused = no_append.refusal(exc)
        if refused is not None:
            raise refused from exc
        raise
    return _copy(conn, pairs, stypes)


def _copy(
    conn: Connection, pairs: Sequence[tuple[StreamAppend, EncodedBatch]], stypes: Sequence[str]
) -> int:
    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise errors.ConfigurationError(
            "import_streams needs a synchronous psycopg 3 connection (postgresql+psycopg://); "
            "use append_many on other drivers"
        )
    count = 0
    try:
        with driver.cursor() as cursor, cursor.copy(COPY_EVENTS) as copy:
            for (item, batch), stype in zip(pairs, stypes, strict=True):
                for k, event_id in enumerate(batch.ids):
                    copy.write_row(
                        (
                            event_id, item.stream_id, stype, k + 1, batch.types[k],
                            batch.schema_versions[k], batch.datas[k], batch.metas[k],
                        )
                    )  # fmt: skip
                    count += 1
    except psycopg.Error as exc:
        state = getattr(exc, "sqlstate", None)
        if state == "23514" and "partition" in str(exc):
            raise errors.PartitionMissing(str(exc).splitlines()[0]) from exc
        raise DBAPIError.instance(
            COPY_EVENTS, {}, exc, psycopg.Error, dialect=conn.dialect
        ) from exc
    return count
