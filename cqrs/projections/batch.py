"""Internal: one runner batch, one transaction.

``run_batch`` takes the transaction-scoped advisory lock of (projection,
shard) without waiting and reads the checkpoint and the next events through
the gap-free cursor (one statement, ``sql.read_batch``), applies them
set-based, parks events of parked streams, and moves the checkpoint by
compare-and-set. Read-model rows and the checkpoint commit together, so every
event's effects happen exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from sqlalchemy import Connection, Table

from cqrs.errortext import clip, describe
from cqrs.events.model import START, Position
from cqrs.projections import sql
from cqrs.projections.declarative import Projection
from cqrs.store import driver
from cqrs.store.event_store import EventStore
from cqrs.store.rows import EventRow, gc_paused

PARKED_BEHIND = "parked behind an earlier failure in this stream"

# A batch reads at most this many times ``limit`` events of the log (next_scan).
SCAN_AHEAD = 64

# Where the head columns of a batch row are (sql.BATCH_HEAD).
_PARKED, _WANTED, _PLACE, _LAST = (
    sql.BATCH_HEAD.index(c) for c in ("parked", "wanted", "place", "last")
)


@attrs.frozen
class Target:
    """Where a batch reads and writes: a projection's shard, or a rebuild's shadow."""

    projection: Projection
    shard: int = 0
    name: str = ""
    shards: int = 0
    table_map: Mapping[Table, Table] = attrs.field(factory=dict)
    durable: bool = True

    @property
    def checkpoint_name(self) -> str:
        return self.name or self.projection.name

    @property
    def shard_count(self) -> int:
        return self.shards or self.projection.shards


@attrs.frozen
class Outcome:
    """What one batch did."""

    locked: bool
    applied: int = 0
    parked: int = 0
    full: bool = False
    checkpoint: Position = START
    scanned: int = 0  # events of the log the checkpoint moved past (handled or not)

    @property
    def processed(self) -> int:
        return self.applied + self.parked


class CheckpointMoved(Exception):
    """Another process moved the checkpoint under us (the CAS failed)."""


def park(conn: Connection, target: Target, row: EventRow, error: str, attempts: int) -> None:
    conn.execute(
        sql.PARK,
        {
            "p": target.checkpoint_name, "s": target.shard, "sid": row.stream_id,
            "eid": row.event_id, "xid": str(row.xid), "pos": row.global_position,
            "version": row.version, "etype": row.event_type, "err": clip(error),
            "attempts": attempts,
        },
    )  # fmt: skip


def run_batch(
    conn: Connection,
    store: EventStore,
    target: Target,
    *,
    isolate: bool = False,
    attempts: int = 1,
    wait_lock: bool = False,
    limit: int | None = None,
    scan: int | None = None,
) -> Outcome:
    """Run one batch for ``target`` in its own transaction on ``conn``.

    ``isolate`` applies event by event in savepoints and parks the ones that
    fail (the failure policy's last step). ``limit`` caps the events applied
    (default: the projection's ``batch_size``), ``scan`` the events of the log
    read to find them (default: ``limit``; see ``next_scan``).
    """
    # The collector stays off for the whole batch (rows.gc_paused): with it on, the
    # page's decoded events made every few hundred row writes trigger a collection.
    with conn.begin(), gc_paused():
        return batch_body(
            conn, store, target, isolate=isolate, attempts=attempts, wait_lock=wait_lock,
            limit=limit, scan=scan,
        )  # fmt: skip


def next_scan(outcome: Outcome, limit: int) -> int:
    """How far the next batch of a target should read, after ``outcome``.

    A projection that handles every event reads ``limit`` events; one that
    skips most (other types, other shards) reads further ahead, in proportion
    to what it skipped last time, up to ``SCAN_AHEAD`` times ``limit``, so a
    rare event type costs a few large windows instead of many empty ones.
    """
    if outcome.scanned <= 0:
        return limit
    wanted = max(outcome.processed, 1)
    return max(limit, min(limit * SCAN_AHEAD, -(-limit * outcome.scanned // wanted)))


def batch_body(
    conn: Connection,
    store: EventStore,
    target: Target,
    *,
    isolate: bool = False,
    attempts: int = 1,
    wait_lock: bool = False,
    limit: int | None = None,
    scan: int | None = None,
) -> Outcome:
    """``run_batch`` inside the caller's transaction (a rebuild's swap uses it)."""
    name, shard = target.checkpoint_name, target.shard
    projection = target.projection
    limit = limit or projection.batch_size
    scan = max(limit, scan or limit)
    if wait_lock:
        conn.execute(sql.LOCK, {"p": name, "s": shard})
    types = projection.event_types()
    sharded = target.shard_count > 1
    params: dict[str, Any] = {
        "p": name, "s": shard, "lim": limit, "scan": scan, "types": types,
        # Never for a projection that appends: its events could be read, then lost in a
        # crash, and their positions handed out again behind the readers' cursors.
        "shards": target.shard_count, "fast": not (target.durable or projection.appends),
        # The statement marks the batch (before its first write) when it reads an event
        # the projection wants: other readers need not wait for this transaction.
        "mark": not projection.appends,
    }  # fmt: skip
    # Tuples straight from psycopg (the store's driver): SQLAlchemy's Row objects cost
    # about a tenth of a batch's client time. Columns: sql.BATCH_HEAD, then EventRow;
    # the events, then one row without an event that carries the head.
    # A window wider than the page finds its place and end in SQL (sql.read_batch); one
    # no wider comes back whole, and its length says both.
    windowed = scan > limit
    statement = sql.READ_BATCH[(types is not None, sharded, windowed)]
    rows = driver.rows(conn, statement, params, binary=True)
    locked, horizon_text, checkpoint_xid, checkpoint_position = rows[-1][:4]
    if not locked:
        return Outcome(locked=False)
    horizon = int(horizon_text)
    at = sql.EVENT_AT
    read = rows[:-1]  # every row but the head carries an event
    wanted = [r for r in read if r[_WANTED]]
    if checkpoint_xid is None:
        conn.execute(sql.ENSURE_CHECKPOINT, {"p": name, "s": shard})
        checkpoint = START
    else:
        checkpoint = Position(int(checkpoint_xid), int(checkpoint_position))
    parked_streams = {r[at + 1] for r in wanted if r[_PARKED]}
    make = EventRow._make
    applied = parked = 0
    errors: list[str] = []
    if isolate:
        events_of = [make(r[at:]) for r in wanted]
        applied, parked = _isolated(
            conn, store, target, events_of, parked_streams, attempts, errors
        )
    else:
        live = []
        decode = store.decode
        with gc_paused():
            for r in wanted:
                if parked_streams and r[at + 1] in parked_streams:
                    park(conn, target, make(r[at:]), PARKED_BEHIND, 0)
                    parked += 1
                else:
                    live.append(decode(r[at:]))  # the EventRow columns, as a plain tuple
        projection.apply(conn, live, table_map=target.table_map)
        applied = len(live)
    new, full, scanned = checkpoint, False, 0
    if read:  # past the events the projection skips too
        last = read[-1]
        row = make(last[at:])
        new = Position(int(row.xid), int(row.global_position))
        scanned = int(last[_PLACE]) if windowed else len(read)
        # More to read: limit events came before the window's end, or the window was full.
        full = (windowed and not last[_LAST]) or scanned >= scan
    if not full:
        new = max(new, Position(horizon - 1, sql.MAX_POSITION))
    if new != checkpoint:
        moved = driver.execute(
            conn,
            sql.CAS_CHECKPOINT,
            {
                "p": name, "s": shard, "nx": str(new.transaction_id),
                "np": new.global_position, "ox": str(checkpoint.transaction_id),
                "op": checkpoint.global_position,
                "clear": applied > 0 and not errors, "err": errors[0] if errors else None,
            },
        )  # fmt: skip
        if moved != 1:
            raise CheckpointMoved(name)
    return Outcome(True, applied, parked, full, new, scanned)


def _isolated(
    conn: Connection,
    store: EventStore,
    target: Target,
    events_of: Sequence[EventRow],
    parked_streams: set[str],
    attempts: int,
    errors: list[str],
) -> tuple[int, int]:
    from sqlalchemy.exc import DBAPIError

    applied = parked = 0
    for r in events_of:
        if r.stream_id in parked_streams:
            park(conn, target, r, PARKED_BEHIND, 0)
            parked += 1
            continue
        savepoint = conn.begin_nested()
        try:
            event = store.decode(r)
            target.projection.apply(conn, [event], table_map=target.table_map)
        except Exception as exc:
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                raise
            savepoint.rollback()
            errors.append(describe(exc))
            park(conn, target, r, errors[-1], attempts)
            parked_streams.add(r.stream_id)
            parked += 1
        else:
            savepoint.commit()
            applied += 1
    return applied, parked
