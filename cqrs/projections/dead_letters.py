"""Public: parked events: list them, retry them once the handler is fixed, or skip them.

When the failure policy gives up on an event, the runner parks it in
``dead_letters`` together with every later event of the same stream (so the
stream's order holds) and goes on with the other streams. ``retry`` applies a
stream's parked events in order, in one transaction, and un-parks the stream
when all of them succeed; ``skip`` drops entries without applying them::

    for letter in list_dead_letters(engine, "order_summary"):
        print(letter.id, letter.stream_id, letter.error)
    retry_dead_letters(engine, summary, stream_id="order-7")
    skip_dead_letters(engine, "order_summary", [12])
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import attrs
from sqlalchemy import Connection, Engine, text

from cqrs.binds import require_sync
from cqrs.errors import ProjectionError
from cqrs.errortext import clip, describe
from cqrs.events.model import Position
from cqrs.projections import sql
from cqrs.projections.declarative import Projection
from cqrs.store import driver
from cqrs.store.event_store import EventStore

LIST = text(
    "SELECT id, projection, shard, stream_id, event_id, transaction_id::text, global_position, "
    "version, event_type, error, attempts, parked_at FROM dead_letters "
    "WHERE (CAST(:p AS text) IS NULL OR projection = :p) "
    "AND (CAST(:sid AS text) IS NULL OR stream_id = :sid) "
    "ORDER BY projection, stream_id, transaction_id, global_position"
)
STREAMS_OF = text(
    "SELECT DISTINCT stream_id, shard FROM dead_letters "
    "WHERE projection = :p AND id = ANY(CAST(:ids AS bigint[]))"
)
SHARDS_OF_STREAM = text(
    "SELECT DISTINCT shard FROM dead_letters WHERE projection = :p AND stream_id = :sid"
)
PARKED_OF_STREAM = text(
    "SELECT id, transaction_id::text, global_position FROM dead_letters "
    "WHERE projection = :p AND stream_id = :sid ORDER BY transaction_id, global_position "
    "FOR UPDATE"
)
DELETE_IDS = text(
    "DELETE FROM dead_letters WHERE projection = :p AND id = ANY(CAST(:ids AS bigint[])) "
    "RETURNING id"
)
# A shard's last error is about its parked events: once none is left (retried or
# skipped), `cqrs projections status` should stop showing it.
CLEAR_SETTLED_ERRORS = text(
    "UPDATE checkpoints c SET last_error = NULL WHERE c.projection = :p "
    "AND c.last_error IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM dead_letters d WHERE d.projection = c.projection AND d.shard = c.shard)"
)
RECORD_FAILURE = text(
    "UPDATE dead_letters SET error = :err, attempts = attempts + 1 WHERE id = :id"
)


@attrs.frozen
class DeadLetter:
    """One parked event."""

    id: int
    projection: str
    shard: int
    stream_id: str
    event_id: uuid.UUID
    position: Position
    version: int
    event_type: str
    error: str
    attempts: int
    parked_at: datetime


def list_dead_letters(
    engine: Engine, projection: str | None = None, *, stream_id: str | None = None
) -> list[DeadLetter]:
    """Parked events, oldest first per stream."""
    require_sync(engine, "list_dead_letters", "run it on a sync engine (create_engine(url))")
    with engine.connect() as conn:
        rows = conn.execute(LIST, {"p": projection, "sid": stream_id}).all()
    return [
        DeadLetter(r[0], r[1], r[2], r[3], r[4], Position(int(r[5]), int(r[6])), *r[7:])
        for r in rows
    ]


def retry_dead_letters(
    engine: Engine,
    projection: Projection,
    *,
    stream_id: str | None = None,
    ids: Iterable[int] = (),
    store: EventStore | None = None,
) -> int:
    """Apply the parked events of a stream (or of the streams of ``ids``) again, in order.

    Each stream is one transaction holding its shard's advisory lock: all its
    parked events apply and leave ``dead_letters``, or none does (the error is
    recorded on the entry and :class:`~cqrs.errors.ProjectionError` raised).
    Returns the number of events applied.
    """
    require_sync(engine, "retry_dead_letters", "run it on a sync engine (create_engine(url))")
    store = store or EventStore(registry=projection.registry)
    name = projection.name
    with engine.connect() as conn:
        if stream_id is not None:
            shards = [r[0] for r in conn.execute(SHARDS_OF_STREAM, {"p": name, "sid": stream_id})]
            streams = [(stream_id, s) for s in shards]
        else:
            streams = [tuple(r) for r in conn.execute(STREAMS_OF, {"p": name, "ids": list(ids)})]
        conn.rollback()
        if not streams:
            raise ProjectionError(
                f"projection {name!r} has no parked events for "
                f"{'stream ' + repr(stream_id) if stream_id else 'ids ' + str(list(ids))}; "
                "see `cqrs projections dead-letters list`"
            )
        applied = 0
        for sid, shard in streams:
            applied += _retry_stream(conn, store, projection, str(sid), int(shard))
    return applied


def _retry_stream(
    conn: Connection, store: EventStore, projection: Projection, stream_id: str, shard: int
) -> int:
    name = projection.name
    failed: tuple[int, BaseException] | None = None
    with conn.begin() as tx:
        conn.execute(sql.LOCK, {"p": name, "s": shard})
        parked = conn.execute(PARKED_OF_STREAM, {"p": name, "sid": stream_id}).all()
        for letter_id, xid, pos in parked:
            # driver.rows: the event as the runner's batch gave it (cqrs.store.timestamps)
            found = driver.rows(conn, sql.READ_EVENT, {"xid": xid, "pos": pos})
            if not found:
                continue
            row = found[0]
            try:
                projection.apply(conn, [store.decode(row)])
            except Exception as problem:
                failed = (int(letter_id), problem)
                tx.rollback()
                break
        else:
            conn.execute(DELETE_IDS, {"p": name, "ids": [int(r[0]) for r in parked]})
            conn.execute(CLEAR_SETTLED_ERRORS, {"p": name})
            return len(parked)
    assert failed is not None
    letter_id, exc = failed
    with conn.begin():
        conn.execute(RECORD_FAILURE, {"id": letter_id, "err": clip(describe(exc))})
    raise ProjectionError(
        f"retrying stream {stream_id!r} of projection {name!r} failed again at dead letter "
        f"{letter_id}: {describe(exc)}; fix the handler and retry, or skip that entry"
    ) from exc


def skip_dead_letters(engine: Engine, projection: str, ids: Iterable[int]) -> int:
    """Drop parked entries without applying them; returns how many were dropped.

    A stream stays parked while any entry of it remains: skip the poison event,
    then ``retry`` the rest of the stream. A shard left with no parked entry
    loses its ``last_error`` (``projection_status`` stops reporting it); so
    does one whose entries all applied on ``retry``.
    """
    wanted = list(ids)
    with engine.begin() as conn:
        gone = conn.execute(DELETE_IDS, {"p": projection, "ids": wanted}).all()
        if len(gone) != len(set(wanted)):
            missing = sorted(set(wanted) - {int(r[0]) for r in gone})
            raise ProjectionError(  # the transaction rolls back: nothing is dropped
                f"projection {projection!r} has no dead letters {missing}; nothing was "
                "skipped; see `cqrs projections dead-letters list`"
            )
        conn.execute(CLEAR_SETTLED_ERRORS, {"p": projection})
    return len(gone)
