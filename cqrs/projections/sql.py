"""Internal: the runner's SQL texts (checkpoints, batch reads, locks, dead letters)."""

from __future__ import annotations

from sqlalchemy import text

from cqrs.store import no_append, rows
from cqrs.store.horizon import READ_HORIZON

MAX_POSITION = 2**63 - 1


def shard_expression(stream_id: str = "stream_id") -> str:
    """SQL for the shard of the stream named by the column ``stream_id``: the hash of
    its id, made non-negative, modulo ``:shards``."""
    return f"((hashtext({stream_id})::bigint + 2147483648) % :shards)"


LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:p), :s)")

ENSURE_CHECKPOINT = text(
    "INSERT INTO checkpoints (projection, shard) VALUES (:p, :s) "
    "ON CONFLICT (projection, shard) DO NOTHING"
)

GET_CHECKPOINT = text(
    "SELECT transaction_id::text, global_position FROM checkpoints "
    "WHERE projection = :p AND shard = :s"
)

CAS_CHECKPOINT = text(
    "UPDATE checkpoints SET transaction_id = CAST(:nx AS xid8), global_position = :np, "
    "updated_at = clock_timestamp(), "
    "last_error = CASE WHEN :clear THEN NULL ELSE COALESCE(CAST(:err AS text), last_error) END "
    "WHERE projection = :p AND shard = :s "
    "AND transaction_id = CAST(:ox AS xid8) AND global_position = :op"
)

SET_CHECKPOINT = text(
    "INSERT INTO checkpoints (projection, shard, transaction_id, global_position) "
    "VALUES (:p, :s, CAST(:nx AS xid8), :np) ON CONFLICT (projection, shard) DO UPDATE "
    "SET transaction_id = EXCLUDED.transaction_id, global_position = EXCLUDED.global_position, "
    "updated_at = clock_timestamp(), last_error = NULL"
)

SET_ERROR = text(
    "UPDATE checkpoints SET last_error = :err, updated_at = clock_timestamp() "
    "WHERE projection = :p AND shard = :s"
)


# What precedes the event columns in each row of ``read_batch``, in order.
BATCH_HEAD = (
    "locked", "horizon", "checkpoint_xid", "checkpoint_position", "parked", "wanted", "place",
    "last", "marked",
)  # fmt: skip
EVENT_AT = len(BATCH_HEAD)
"""Where a batch row's event columns (``cqrs.store.rows.EventRow``) start."""

# The batch's cursor: its checkpoint (``cp``, at most one row), the log's start without one.
_AFTER = (
    "(coalesce((SELECT transaction_id FROM cp), '0'::xid8), "
    "coalesce((SELECT global_position FROM cp), 0))"
)


def read_batch(typed: bool, sharded: bool, windowed: bool = True) -> str:
    """The whole read side of a batch in one statement and one snapshot.

    It takes the (projection, shard) advisory lock without waiting (no events
    when another runner holds it). The events come first, in log order, each
    with whether its stream is parked, whether the projection wants it (its
    type and shard), its place in the window and whether it is the window's
    last event. The last row carries no event: the lock result, the reader's
    horizon and the checkpoint.

    The batch reads a window: the next ``:scan`` events of the log after the
    checkpoint in index order, cut at the horizon. It returns the first
    ``:lim`` of those the projection wants, or all of them and then the
    window's last event (without payload when unwanted), so the checkpoint
    moves past the events the projection skips. The outer LIMIT stops the
    scan as soon as ``:lim`` rows are found. Filtering inside the inner LIMIT
    would let the planner estimate the filter (no statistics on a young
    partition: 0.5% of rows match) and sort everything after the checkpoint
    for each batch. (A window widened by ``batch.next_scan`` that reaches
    past what the planner thinks is left of the log can still be planned as
    a sort; it sorts at most a few windows' worth of events.) The horizon
    filters after the inner LIMIT, as in
    ``cqrs.store.sql.READ_ALL`` (same rows: events at or above it sort after
    every event below it), so a window shorter than ``:scan`` proves the
    checkpoint may move to just before the horizon. With ``:mark`` (a projection
    that appends nothing), the first wanted row marks the transaction as one
    that appends nothing (``cqrs.store.no_append``), before the batch writes
    anything. The snapshot may predate
    a commit by the lock's previous holder; the checkpoint compare-and-set
    then fails and the batch rolls back.

    The events and the head row are a ``UNION ALL`` ordered by position, the
    head's NULL position last: the planner merges the events, already in index
    order, with the one head row (a Merge Append) instead of sorting the page,
    which a head joined to every event row (a LATERAL join) made it do: a fifth
    to a third of the statement's time (EXPLAIN ANALYZE, PostgreSQL 15, pages
    of 1,000 and 4,000 events).

    Without ``windowed`` (for a window no wider than the page, ``:scan`` equal
    to ``:lim``: ``batch.next_scan``'s choice for a projection that wanted every
    event of its last window) the statement returns every event of the window,
    the unwanted ones without payload, so the client counts the place and sees
    the window's end itself. The window functions that find them for a wider
    window (a ``WindowAgg``, which spools every row of the window) were about a
    third of the statement's time.
    """
    filters = []
    if typed:
        filters.append("e.event_type = ANY(CAST(:types AS text[]))")
    if sharded:
        filters.append(f"{shard_expression('e.stream_id')} = :s")
    wanted = " AND ".join(filters) or "true"
    columns = rows.table_columns("e")
    page_columns = rows.select_list("page", payload_if="page.wanted")
    # The head row: the first four head columns, NULL for the rest and for the event's.
    rest = ", ".join("NULL" for _ in BATCH_HEAD[4:] + rows.FIELDS)
    if windowed:
        place = "page.n AS place, page.last"
        window = "SELECT w.*, row_number() OVER o AS n, lead(true) OVER o IS NULL AS last FROM ("
        window_end = "WINDOW o AS (ORDER BY w.transaction_id, w.global_position)"
        page_filter = "WHERE page.wanted OR page.last "
    else:
        place = "NULL::bigint AS place, NULL::boolean AS last"
        window = "SELECT w.* FROM ("
        window_end = page_filter = ""
    return (
        "WITH lk AS (SELECT pg_try_advisory_xact_lock(hashtext(:p), :s) AS ok, "
        "set_config('synchronous_commit', CASE WHEN :fast THEN 'off' "
        "ELSE current_setting('synchronous_commit') END, true) AS sc), "
        f"h AS (SELECT {READ_HORIZON} AS xmin), "
        "cp AS (SELECT transaction_id, global_position FROM checkpoints "
        "       WHERE projection = :p AND shard = :s), "
        "pk AS (SELECT coalesce(array_agg(DISTINCT stream_id), '{}') AS streams "
        "       FROM dead_letters WHERE projection = :p AND shard = :s) "
        "(SELECT NULL::boolean AS locked, NULL::text AS horizon, NULL::text AS checkpoint_xid, "
        "NULL::bigint AS checkpoint_position, "
        "page.stream_id = ANY(CAST((SELECT streams FROM pk) AS text[])) AS parked, "
        f"page.wanted, {place}, "
        f"{no_append.mark_if(':mark AND page.wanted')} AS marked, "
        f"{page_columns} FROM ({window}"
        f"SELECT {columns}, {wanted} AS wanted FROM events e "
        f"WHERE (e.transaction_id, e.global_position) > {_AFTER} AND (SELECT ok FROM lk) "
        "ORDER BY e.transaction_id, e.global_position LIMIT :scan) w "
        "WHERE w.transaction_id < (SELECT xmin FROM h) "
        f"{window_end}) page "
        f"{page_filter}"
        "ORDER BY page.transaction_id, page.global_position LIMIT :lim) "
        "UNION ALL SELECT lk.ok, h.xmin::text, cp.transaction_id::text, cp.global_position, "
        f"{rest} "
        "FROM lk CROSS JOIN h LEFT JOIN cp ON true "
        "ORDER BY xid, global_position"
    )


READ_BATCH = {
    (t, s, w): text(read_batch(t, s, w))
    for t in (False, True)
    for s in (False, True)
    for w in (False, True)
}
"""The batch read by (typed, sharded, windowed)."""

PARK = text(
    "INSERT INTO dead_letters (projection, shard, stream_id, event_id, transaction_id, "
    "global_position, version, event_type, error, attempts) "
    "VALUES (:p, :s, :sid, :eid, CAST(:xid AS xid8), :pos, :version, :etype, :err, :attempts)"
)

READ_EVENT = text(
    f"SELECT {rows.select_list('events')} FROM events "
    "WHERE transaction_id = CAST(:xid AS xid8) AND global_position = :pos"
)
