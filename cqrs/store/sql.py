"""Internal: the SQL of the event log, one constant text per statement (so psycopg
prepares each once per connection)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import TextClause, TextualSelect, column, text

from cqrs.store import rows
from cqrs.store.horizon import READ_HORIZON
from cqrs.store.no_append import GUARD


def _named(statement: TextClause, names: Sequence[str]) -> TextualSelect:
    """``statement`` with its result columns named, untyped (values come as psycopg gives them).

    SQLAlchemy then keeps the result metadata with the cached compiled form
    instead of rebuilding it from the cursor on every call.
    """
    return statement.columns(*(column(name) for name in names))


_INSERT_EVENTS = """
INSERT INTO events (event_id, stream_id, stream_type, version, event_type,
                    schema_version, data, metadata)"""

# What an append returns of each event it wrote; the caller knows the rest.
_RETURNING = """
RETURNING global_position, transaction_id::text AS xid, version, recorded_at, stream_type
"""
_RETURNED = ("global_position", "xid", "version", "recorded_at", "stream_type")

# Several events: the payloads travel as ONE JSON array text each (:datas,
# :metas), which psycopg sends as is; a text[] of JSON documents is escaped
# element by element on the client (that was most of a batch append's CPU).
_EVENT_ROWS = (
    _INSERT_EVENTS
    + """
SELECT e.id, :sid, s.stream_type, s.version - :n + e.ord::int, e.type, e.sv, e.data, e.meta
FROM s, ROWS FROM (unnest(CAST(:ids AS uuid[])), unnest(CAST(:types AS text[])),
                   unnest(CAST(:svs AS int[])), jsonb_array_elements(CAST(:datas AS jsonb)),
                   jsonb_array_elements(CAST(:metas AS jsonb)))
        WITH ORDINALITY AS e(id, type, sv, data, meta, ord)"""
    + _RETURNING
)

# Batches too big for one jsonb document (256 MB) send text[] payloads.
_EVENT_ROWS_HUGE = (
    _INSERT_EVENTS
    + """
SELECT e.id, :sid, s.stream_type, s.version - :n + e.ord::int, e.type, e.sv,
       e.data::jsonb, e.meta::jsonb
FROM s, unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]), CAST(:svs AS int[]),
               CAST(:datas AS text[]), CAST(:metas AS text[]))
        WITH ORDINALITY AS e(id, type, sv, data, meta, ord)"""
    + _RETURNING
)

# One event (the common case): scalar parameters, no arrays to build or unnest.
_EVENT_ROW = (
    _INSERT_EVENTS
    + """
SELECT :id, :sid, s.stream_type, s.version, :type, :sv, CAST(:data AS jsonb), CAST(:meta AS jsonb)
FROM s"""
    + _RETURNING
)

# The stream head: a compare-and-set on ``streams`` that also keeps the log's
# per-stream order. The log is read in transaction-id order, and a transaction
# takes its id at its first write of any kind, so a transaction can carry a
# LOWER id than an append to the same stream that committed before it: one
# that wrote something earlier (its own table, an idempotency claim, another
# stream), or one that took its id just before another writer took the row.
# Its events would then be read before that append's: a higher version before a
# lower one. Two measures keep the order:
#
# * ``lk``: a transaction without an id yet takes the stream's advisory lock
#   (transaction-scoped, the key ``LOCK_STREAM_KEY`` uses) and only then its
#   id. First appends to a stream are so serialised, and each takes its id
#   after the previous one's; a plain one-append transaction is never refused.
#   A transaction that already has an id takes no lock (a unit of work over
#   many streams holds one advisory lock, not one per stream).
# * ``last_xid``: the id of the stream's last append. An append from a lower
#   id matches no row and is refused (errors.AppendOrderConflict); retried in a
#   fresh transaction it takes a newer id and succeeds. Under READ COMMITTED a
#   writer that waited for the row re-checks the condition against the
#   committed row, so the check cannot be raced.
#
# A stream whose version would pass 2147483647 (``integer``) matches no row either,
# rather than failing the statement (and the caller's transaction) on the overflow:
# EventStore then reports errors.StreamFull. An exact expectation is checked before
# sending (cqrs.store.validation.check_version_room).
#
# ``OFFSET 0`` keeps the lock in a sub-select of its own, evaluated before the
# id is asked for.
_LOCK_THEN_XID = (
    """
WITH lk AS (
    SELECT pg_current_xact_id() AS xid FROM (
        SELECT CASE WHEN pg_current_xact_id_if_assigned() IS NULL
                    THEN pg_advisory_xact_lock(hashtextextended(:sid, 7)) END OFFSET 0) first
    WHERE """
    + GUARD
    + """
),"""
)

_NEW_HEAD = (
    _LOCK_THEN_XID
    + """
s AS (
    INSERT INTO streams (stream_id, stream_type, version, last_xid)
    VALUES (:sid, :stype, :n, (SELECT xid FROM lk))
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING version, stream_type
)"""
)

_ANY_HEAD = (
    _LOCK_THEN_XID
    + """
s AS (
    INSERT INTO streams AS st (stream_id, stream_type, version, last_xid)
    VALUES (:sid, :stype, :n, (SELECT xid FROM lk))
    ON CONFLICT (stream_id) DO UPDATE
        SET version = st.version + EXCLUDED.version, last_xid = EXCLUDED.last_xid
        WHERE NOT st.archived AND st.last_xid <= EXCLUDED.last_xid
          AND st.version <= 2147483647 - EXCLUDED.version
    RETURNING version, stream_type
)"""
)

_EXACT_HEAD = (
    _LOCK_THEN_XID
    + """
s AS (
    UPDATE streams SET version = version + :n, last_xid = (SELECT xid FROM lk)
    WHERE stream_id = :sid AND version = :expected AND NOT archived
      AND last_xid <= (SELECT xid FROM lk)
    RETURNING version, stream_type
)"""
)

_EXISTING_HEAD = (
    _LOCK_THEN_XID
    + """
s AS (
    UPDATE streams SET version = version + :n, last_xid = (SELECT xid FROM lk)
    WHERE stream_id = :sid AND NOT archived AND last_xid <= (SELECT xid FROM lk)
      AND version <= 2147483647 - :n
    RETURNING version, stream_type
)"""
)

APPEND_NEW = _named(text(_NEW_HEAD + _EVENT_ROWS), _RETURNED)
APPEND_ANY = _named(text(_ANY_HEAD + _EVENT_ROWS), _RETURNED)
APPEND_EXACT = _named(text(_EXACT_HEAD + _EVENT_ROWS), _RETURNED)
APPEND_EXISTING = _named(text(_EXISTING_HEAD + _EVENT_ROWS), _RETURNED)

_HEADS = {"new": _NEW_HEAD, "any": _ANY_HEAD, "exact": _EXACT_HEAD, "existing": _EXISTING_HEAD}

# The append statement for each expectation ("new", "any", "exact", "existing"),
# by batch shape: several events, one event, several events over JSON_ARRAY_LIMIT.
APPEND_MANY = {"new": APPEND_NEW, "any": APPEND_ANY, "exact": APPEND_EXACT,
               "existing": APPEND_EXISTING}  # fmt: skip
APPEND_ONE = {mode: _named(text(head + _EVENT_ROW), _RETURNED) for mode, head in _HEADS.items()}
APPEND_HUGE = {
    mode: _named(text(head + _EVENT_ROWS_HUGE), _RETURNED) for mode, head in _HEADS.items()
}

# Characters of JSON above which a batch's payloads go as text[] (_EVENT_ROWS_HUGE).
JSON_ARRAY_LIMIT = 32 * 1024 * 1024

STREAM_INFO = text(
    "SELECT stream_id, stream_type, version, created_at, archived "
    "FROM streams WHERE stream_id = :sid"
)

# Why an append matched no row: the stream as committed, and whether its last
# append came from a newer transaction than this one.
REFUSAL = text(
    "SELECT version, archived, last_xid > pg_current_xact_id(), last_xid::text, "
    "pg_current_xact_id()::text FROM streams WHERE stream_id = :sid"
)

LOCK_STREAM_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:sid, 7))")

FIND_EVENT_IDS = text(
    "SELECT event_id, version, transaction_id::text AS xid, global_position FROM events "
    "WHERE stream_id = :sid AND event_id = ANY(CAST(:ids AS uuid[])) "
    "AND recorded_at >= (SELECT created_at - interval '1 hour' FROM streams "
    "                    WHERE stream_id = :sid)"
)

# Every read of events selects one row shape, owned by cqrs.store.rows.
EVENT_COLUMNS = rows.select_list("events")

# Partition pruning: no event of a stream is older than the stream row (both
# stamps are clock_timestamp(); the hour absorbs clock steps), so monthly
# partitions before the stream's month are skipped at run time.
READ_STREAM = _named(
    text(
        f"SELECT {EVENT_COLUMNS} FROM events "
        "WHERE stream_id = :sid AND version >= :lo AND version <= :hi "
        "AND recorded_at >= (SELECT created_at - interval '1 hour' FROM streams "
        "                    WHERE stream_id = :sid) "
        "ORDER BY version"
    ),
    rows.FIELDS,
)


# The gap-free cursor: only transactions older than every running one that can
# write this database (the horizon, cqrs.store.horizon) are visible to the
# reader, so a later commit can never land behind the cursor.
# The xid is selected as text under another name (cqrs.store.rows) and ORDER BY
# names the table's column: ORDER BY a bare name binds to an output column
# first, and sorting by the text form puts '10000' before '9999' and skips
# events.
#
# The horizon filters the page AFTER the LIMIT, not inside it. Both give the
# same rows: every event at or above the horizon sorts after every event below
# it, so the readable rows are a prefix of the first :lim rows after the cursor.
# Inside, it made a range the planner cannot estimate (no statistics on a young
# partition: 0.5% of the table), and it chose a bitmap scan plus a sort of
# every event after the cursor, one page at a time: 14 ms a page on 20,000
# events instead of 1 ms in index order (docs/benchmarks.md, "read_all").
#
# The cursor's values are sub-selects, which the planner cannot see into: it
# plans the page for an unknown cursor (a third of the log after it) and walks
# the index in order. Given the values, it estimated from the statistics of
# ``transaction_id``, where a cursor inside a transaction that wrote many
# events (an import, a batch) looks like the end of the log when no later id
# is known: it then read and sorted every event after the cursor for each
# page, 16 ms instead of 0.8 on 20,000 events (analyzed).
_CURSOR = "((SELECT CAST(:xid AS xid8)), (SELECT CAST(:pos AS bigint)))"


def _read_all_page(filters: str = "") -> TextualSelect:
    """One page of the gap-free log; ``filters`` narrows the rows inside the LIMIT."""
    return _named(
        text(
            f"SELECT {rows.names()} FROM ("
            f"SELECT {EVENT_COLUMNS}, events.transaction_id AS sort_xid FROM events "
            f"WHERE (transaction_id, global_position) > {_CURSOR}{filters} "
            "ORDER BY events.transaction_id, events.global_position LIMIT :lim) page "
            f"WHERE sort_xid < {READ_HORIZON} "
            "ORDER BY sort_xid, global_position"
        ),
        rows.FIELDS,
    )


READ_ALL = _read_all_page()
READ_ALL_TYPES = _read_all_page(" AND event_type = ANY(CAST(:types AS text[]))")

HEAD = text(
    "SELECT transaction_id::text AS xid, global_position FROM events "
    "ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1"
)

SET_ARCHIVED = text(
    "UPDATE streams SET archived = :archived WHERE stream_id = :sid RETURNING stream_id"
)


# Many streams in one statement (EventStore.append_many): every stream's
# expectation is checked BEFORE anything is written, so a refused call writes
# nothing and leaves the transaction usable, like a refused single append.
#
# * ``lk``: as above, but a first write takes the advisory locks of every
#   stream of the call, in key order (two calls over the same streams cannot
#   deadlock), and only then its id.
# * ``cur`` locks the existing stream rows (in stream_id order, for the same
#   reason) and so sees their latest committed version; ``chk`` tests each
#   stream's expectation and ``last_xid`` against it (COALESCE: a missing row
#   fails an exact or exists check instead of being ignored by bool_and).
# * ``created``/``moved`` write the stream heads only when every check held;
#   the events follow in input order (ORDER BY ord), so within each stream
#   log order is version order.
# * A stream created by a concurrent transaction after the check (not locked:
#   it did not exist) makes ``created`` skip it; ``torn`` then fails the whole
#   statement (a cast error, 22P02, 'cqrs-torn-append'), so nothing is written.
#   The cast takes a sub-select: a constant would be folded, and fail, at plan
#   time whatever the condition.
# * It goes unprepared for many streams (event_store._prepare): a generic plan cannot see
#   how many streams and events the arrays hold.
# * ``recorded_at`` comes back as text, turned into a datetime only when a result's
#   ``recorded`` is read (driver.timestamptz_parser): psycopg's loader of
#   timestamptz was most of the cost of fetching 500 rows, and most writers of a
#   batch never read them.
APPEND_STREAMS = _named(
    text(
        """
WITH lk AS (
    SELECT pg_current_xact_id() AS xid FROM (
        SELECT CASE WHEN pg_current_xact_id_if_assigned() IS NULL THEN (
            SELECT count(pg_advisory_xact_lock(k)) FROM (
                SELECT DISTINCT hashtextextended(sid, 7) AS k
                FROM unnest(CAST(:sids AS text[])) AS sid ORDER BY 1) keys) END OFFSET 0) first
    WHERE """
        + GUARD
        + """
),
i AS (
    SELECT * FROM unnest(CAST(:sids AS text[]), CAST(:stypes AS text[]), CAST(:ns AS int[]),
                         CAST(:expecteds AS int[]), CAST(:modes AS text[]))
        AS i(sid, stype, n, expected, mode)
),
cur AS (
    SELECT stream_id, version, archived, last_xid FROM streams
    WHERE stream_id = ANY(CAST(:sids AS text[])) AND (SELECT xid FROM lk) IS NOT NULL
    ORDER BY stream_id FOR UPDATE
),
chk AS (
    SELECT coalesce(bool_and(coalesce(CASE i.mode
        WHEN 'new' THEN c.stream_id IS NULL
        WHEN 'any' THEN c.stream_id IS NULL
                        OR (NOT c.archived AND c.last_xid <= (SELECT xid FROM lk))
        WHEN 'exact' THEN c.version = i.expected AND NOT c.archived
                          AND c.last_xid <= (SELECT xid FROM lk)
        ELSE NOT c.archived AND c.last_xid <= (SELECT xid FROM lk) END, false)), false) AS ok
    FROM i LEFT JOIN cur c ON c.stream_id = i.sid
),
created AS (
    INSERT INTO streams (stream_id, stream_type, version, last_xid)
    SELECT i.sid, i.stype, i.n, (SELECT xid FROM lk) FROM i
    WHERE (SELECT ok FROM chk) AND i.sid NOT IN (SELECT stream_id FROM cur)
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING stream_id, version, stream_type
),
moved AS (
    UPDATE streams s SET version = s.version + i.n, last_xid = (SELECT xid FROM lk)
    FROM i WHERE s.stream_id = i.sid AND (SELECT ok FROM chk)
      AND s.stream_id IN (SELECT stream_id FROM cur)
    RETURNING s.stream_id, s.version, s.stream_type
),
heads AS (SELECT * FROM created UNION ALL SELECT * FROM moved),
ev AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type,
                        schema_version, data, metadata)
    SELECT e.id, e.sid, h.stream_type, h.version - i.n + e.k, e.type, e.sv, e.data, e.meta
    FROM ROWS FROM (unnest(CAST(:ids AS uuid[])), unnest(CAST(:esids AS text[])),
                    unnest(CAST(:ks AS int[])), unnest(CAST(:types AS text[])),
                    unnest(CAST(:svs AS int[])), jsonb_array_elements(CAST(:datas AS jsonb)),
                    jsonb_array_elements(CAST(:metas AS jsonb)))
            WITH ORDINALITY AS e(id, sid, k, type, sv, data, meta, ord)
    JOIN heads h ON h.stream_id = e.sid JOIN i ON i.sid = e.sid
    ORDER BY e.ord
    RETURNING global_position, transaction_id::text AS xid, version,
              recorded_at::text AS recorded_at, stream_type, stream_id
)
SELECT ev.global_position, ev.xid, ev.version, ev.recorded_at, ev.stream_type, ev.stream_id,
       CASE WHEN (SELECT count(*) FROM heads) < (SELECT count(*) FROM i)
            THEN CAST('cqrs-torn-append ' || (SELECT count(*) FROM heads) AS int) END AS torn
FROM ev"""
    ),
    (*_RETURNED, "stream_id", "torn"),
)

# Why a multi-stream append wrote nothing: each stream as committed.
REFUSALS = text(
    "SELECT stream_id, version, archived, last_xid > pg_current_xact_id(), last_xid::text, "
    "pg_current_xact_id()::text FROM streams WHERE stream_id = ANY(CAST(:sids AS text[]))"
)
