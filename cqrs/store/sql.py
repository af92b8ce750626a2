"""Internal: the SQL of the event log, one constant text per statement (so psycopg
prepares each once per connection)."""

from __future__ import annotations

from sqlalchemy import text

_EVENT_ROWS = """
INSERT INTO events (event_id, stream_id, stream_type, version, event_type,
                    schema_version, data, metadata)
SELECT e.id, :sid, s.stream_type, s.version - :n + e.ord::int, e.type, e.sv,
       e.data::jsonb, e.meta::jsonb
FROM s, unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]), CAST(:svs AS int[]),
               CAST(:datas AS text[]), CAST(:metas AS text[]))
        WITH ORDINALITY AS e(id, type, sv, data, meta, ord)
RETURNING global_position, transaction_id::text AS xid, version, event_id, recorded_at, stream_type
"""

APPEND_NEW = text(
    """
WITH s AS (
    INSERT INTO streams (stream_id, stream_type, version) VALUES (:sid, :stype, :n)
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING version, stream_type
)"""
    + _EVENT_ROWS
)

APPEND_ANY = text(
    """
WITH s AS (
    INSERT INTO streams AS st (stream_id, stream_type, version) VALUES (:sid, :stype, :n)
    ON CONFLICT (stream_id) DO UPDATE SET version = st.version + EXCLUDED.version
        WHERE NOT st.archived
    RETURNING version, stream_type
)"""
    + _EVENT_ROWS
)

APPEND_EXACT = text(
    """
WITH s AS (
    UPDATE streams SET version = version + :n
    WHERE stream_id = :sid AND version = :expected AND NOT archived
    RETURNING version, stream_type
)"""
    + _EVENT_ROWS
)

APPEND_EXISTING = text(
    """
WITH s AS (
    UPDATE streams SET version = version + :n
    WHERE stream_id = :sid AND NOT archived
    RETURNING version, stream_type
)"""
    + _EVENT_ROWS
)

STREAM_INFO = text(
    "SELECT stream_id, stream_type, version, created_at, archived "
    "FROM streams WHERE stream_id = :sid"
)

LOCK_STREAM_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:sid, 7))")

FIND_EVENT_IDS = text(
    "SELECT event_id, version, transaction_id::text AS xid, global_position FROM events "
    "WHERE stream_id = :sid AND event_id = ANY(CAST(:ids AS uuid[])) "
    "AND recorded_at >= (SELECT created_at - interval '1 hour' FROM streams "
    "                    WHERE stream_id = :sid)"
)

EVENT_COLUMNS = (
    "event_id, stream_id, stream_type, version, transaction_id::text AS xid, global_position, "
    "event_type, schema_version, data, metadata, recorded_at"
)

# Partition pruning: no event of a stream is older than the stream row (both
# stamps are clock_timestamp(); the hour absorbs clock steps), so monthly
# partitions before the stream's month are skipped at run time.
READ_STREAM = text(
    f"SELECT {EVENT_COLUMNS} FROM events "
    "WHERE stream_id = :sid AND version >= :lo AND version <= :hi "
    "AND recorded_at >= (SELECT created_at - interval '1 hour' FROM streams "
    "                    WHERE stream_id = :sid) "
    "ORDER BY version"
)

# The gap-free cursor: only transactions older than every running one are
# visible to the reader, so a later commit can never land behind the cursor.
# The xid is selected as text under another name (EVENT_COLUMNS) and ORDER BY
# names the table's column: ORDER BY a bare name binds to an output column
# first, and sorting by the text form puts '10000' before '9999' and skips
# events. Every reader of the log selects EVENT_COLUMNS.
READ_ALL = text(
    f"SELECT {EVENT_COLUMNS} FROM events "
    "WHERE (transaction_id, global_position) > (CAST(:xid AS xid8), :pos) "
    "AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
    "ORDER BY events.transaction_id, events.global_position LIMIT :lim"
)

READ_ALL_TYPES = text(
    f"SELECT {EVENT_COLUMNS} FROM events "
    "WHERE (transaction_id, global_position) > (CAST(:xid AS xid8), :pos) "
    "AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
    "AND event_type = ANY(CAST(:types AS text[])) "
    "ORDER BY events.transaction_id, events.global_position LIMIT :lim"
)

HORIZON = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")

HEAD = text(
    "SELECT transaction_id::text AS xid, global_position FROM events "
    "ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1"
)

SET_ARCHIVED = text(
    "UPDATE streams SET archived = :archived WHERE stream_id = :sid RETURNING stream_id"
)
