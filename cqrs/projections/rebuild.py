"""Public: rebuild a projection without downtime, into shadow tables, then swap.

``rebuild`` copies the shape of each table the projection writes
(``CREATE TABLE <name>__rebuild (LIKE <name> INCLUDING ALL)``; a name that would
pass PostgreSQL's 63-byte limit is shortened with a hash, ``side_name``), replays the
whole log into the copies under its own checkpoint while the old tables keep
serving queries and the live runner keeps going, and then, in one
transaction: waits for the live shards' advisory locks (a batch in flight
finishes first), catches up the last events, renames the copies over the
originals, drops the old tables and moves the live checkpoints to where the
rebuild stopped. Readers see the old read model or the new one, never a mix.

Limits: handlers that write through ``ctx.session`` (ORM) or raw SQL are not
redirected to the copies; use ``ctx.upsert/update/delete`` or ``ctx.table()``.
Foreign keys pointing at a rebuilt table are not carried over::

    rebuild(engine, summary, progress=lambda done, total: print(done, total))
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import attrs
from sqlalchemy import Connection, Engine, MetaData, Table, text

from cqrs.binds import require_sync
from cqrs.events.model import Position
from cqrs.projections import sql
from cqrs.projections.batch import Target, batch_body, next_scan, run_batch
from cqrs.projections.declarative import REBUILD_SUFFIX, Projection
from cqrs.sqlnames import statement
from cqrs.store.event_store import EventStore

SUFFIX = "__rebuild"
OLD_SUFFIX = "__old"
MAX_IDENTIFIER = 63  # bytes: PostgreSQL's NAMEDATALEN - 1; longer names are truncated
COUNT_EVENTS = text("SELECT count(*) FROM events")
INDEXES = text(
    "SELECT indexname, indexdef FROM pg_indexes "
    "WHERE schemaname = current_schema() AND tablename = :t"
)
MOVE_PARKED = text(
    f"UPDATE dead_letters SET projection = :live, shard = {sql.shard_expression()} "
    "WHERE projection = :tmp"
)
FORGET = text("DELETE FROM checkpoints WHERE projection = :p")
FORGET_PARKED = text("DELETE FROM dead_letters WHERE projection = :p")
_RENAME_TABLE = "ALTER TABLE {old} RENAME TO {new}"


@attrs.frozen
class RebuildResult:
    """What a rebuild did."""

    projection: str
    events: int
    checkpoint: Position
    tables: tuple[str, ...]


def side_name(name: str, suffix: str) -> str:
    """``name + suffix``, or when that exceeds PostgreSQL's 63-byte identifier limit,
    a truncated ``name``, 8 hex digits of its hash, and ``suffix``: unique per
    table and never cut short by the server.

    >>> side_name("order_summary", "__rebuild")
    'order_summary__rebuild'
    >>> len(side_name("t" * 63, "__rebuild"))
    63
    """
    whole = name + suffix
    if len(whole.encode()) <= MAX_IDENTIFIER:
        return whole
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    room = MAX_IDENTIFIER - len(suffix.encode()) - len(digest) - 1
    prefix = name.encode()[:room].decode("utf-8", "ignore")
    return f"{prefix}_{digest}{suffix}"


def _shadow(table: Table) -> Table:
    return table.to_metadata(MetaData(), name=side_name(table.name, SUFFIX))


def rebuild(
    engine: Engine,
    projection: Projection,
    *,
    store: EventStore | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildResult:
    """Rebuild ``projection``'s tables from the whole log and swap them in atomically."""
    require_sync(engine, "rebuild", "run it on a sync engine (create_engine(url))")
    store = store or EventStore(registry=projection.registry)
    temp = projection.name + REBUILD_SUFFIX
    shadows = {t: _shadow(t) for t in projection.tables}
    target = Target(projection, 0, name=temp, shards=1, table_map=shadows)
    with engine.begin() as conn:
        conn.execute(FORGET, {"p": temp})
        conn.execute(FORGET_PARKED, {"p": temp})
        for table, shadow in shadows.items():
            conn.execute(statement(conn, "DROP TABLE IF EXISTS {shadow}", shadow=shadow.name))
            conn.execute(
                statement(
                    conn,
                    "CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)",
                    shadow=shadow.name,
                    table=table.name,
                )
            )
        total = int(conn.execute(COUNT_EVENTS).scalar_one())
    done = passed = 0
    scan = None
    with engine.connect() as conn:
        while True:
            outcome = run_batch(conn, store, target, wait_lock=True, scan=scan)
            scan = next_scan(outcome, projection.batch_size)
            done += outcome.processed
            passed += outcome.scanned
            if progress is not None:
                progress(passed, max(total, passed))
            if not outcome.full:
                break
        with conn.begin():
            done += _swap(conn, store, projection, target, shadows)
            checkpoint = _checkpoint(conn, temp)
            conn.execute(FORGET, {"p": temp})
    if progress is not None:  # events of the log passed, of all of them
        progress(max(total, passed), max(total, passed))
    return RebuildResult(projection.name, done, checkpoint, tuple(t.name for t in shadows))


def _checkpoint(conn: Connection, name: str) -> Position:
    row = conn.execute(sql.GET_CHECKPOINT, {"p": name, "s": 0}).one()
    return Position(int(row[0]), int(row[1]))


def _swap(
    conn: Connection,
    store: EventStore,
    projection: Projection,
    target: Target,
    shadows: dict[Table, Table],
) -> int:
    for shard in range(projection.shards):
        conn.execute(sql.LOCK, {"p": projection.name, "s": shard})
    done = 0
    while True:
        outcome = batch_body(conn, store, target, wait_lock=True)
        done += outcome.processed
        if not outcome.full:
            break
    for table, shadow in shadows.items():
        old = side_name(table.name, OLD_SUFFIX)
        names = {r[0]: r[1] for r in conn.execute(INDEXES, {"t": table.name})}
        conn.execute(statement(conn, _RENAME_TABLE, old=table.name, new=old))
        conn.execute(statement(conn, _RENAME_TABLE, old=shadow.name, new=table.name))
        conn.execute(statement(conn, "DROP TABLE {old}", old=old))
        _rename_indexes(conn, table.name, names)
    checkpoint = _checkpoint(conn, target.checkpoint_name)
    conn.execute(FORGET_PARKED, {"p": projection.name})
    conn.execute(
        MOVE_PARKED, {"live": projection.name, "tmp": target.checkpoint_name,
                      "shards": projection.shards},
    )  # fmt: skip
    for shard in range(projection.shards):
        conn.execute(
            sql.SET_CHECKPOINT,
            {"p": projection.name, "s": shard, "nx": str(checkpoint.transaction_id),
             "np": checkpoint.global_position},
        )  # fmt: skip
    return done


def _rename_indexes(conn: Connection, table: str, old: dict[str, str]) -> None:
    """Give the swapped-in indexes the names the old ones had (Alembic stays clean)."""

    def shape(definition: str) -> tuple[bool, str]:
        return definition.startswith("CREATE UNIQUE"), definition.split(" USING ", 1)[1]

    by_shape = {shape(definition): name for name, definition in old.items()}
    for name, definition in conn.execute(INDEXES, {"t": table}).all():
        wanted = by_shape.get(shape(definition))
        if wanted and wanted != name:
            conn.execute(statement(conn, "ALTER INDEX {old} RENAME TO {new}", old=name, new=wanted))
