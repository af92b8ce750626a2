"""Internal: the hand-written raw psycopg baseline the scenarios compare against.

What a careful developer would write without the toolkit, doing the same SQL
work on the same tables: the ``streams`` row is the version check (INSERT for a
new stream, compare-and-set UPDATE for an existing one), the event rows go into
the same partitioned ``events`` table, payloads are ``json.dumps`` of plain
dicts, and reads use the same gap-free ``read_all`` query with psycopg parsing
``jsonb`` into dicts. The caller owns the transaction, as with the store::

    with connect(url, schema) as conn, conn.transaction():
        append_new(conn, "acct-1", "acct", [("bench.deposited", {"amount": "1"})])
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

Row = tuple[Any, ...]
Conn = psycopg.Connection[Row]
Payload = tuple[str, dict[str, Any]]  # (event type, JSON-ready dict)

INSERT_STREAM = (
    "INSERT INTO streams (stream_id, stream_type, version) VALUES (%s, %s, %s) "
    "ON CONFLICT (stream_id) DO NOTHING RETURNING version"
)
BUMP_STREAM = (
    "UPDATE streams SET version = version + %s "
    "WHERE stream_id = %s AND version = %s AND NOT archived RETURNING version"
)
INSERT_ONE = (
    "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
    "schema_version, data) VALUES (%s, %s, %s, %s, %s, 1, %s::jsonb)"
)
# Several events in one statement; the payloads go as one JSON array (the
# fastest of executemany, text[] and this, measured on psycopg 3.3).
INSERT_MANY = (
    "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
    "schema_version, data) "
    "SELECT id, %s, %s, v, t, 1, d "
    "FROM ROWS FROM (unnest(%s::uuid[]), unnest(%s::int[]), unnest(%s::text[]), "
    "jsonb_array_elements(%s::jsonb)) AS e(id, v, t, d)"
)
READ_STREAM = (
    "SELECT event_id, version, event_type, data, metadata, recorded_at FROM events "
    "WHERE stream_id = %s ORDER BY version"
)
# The same page shape as cqrs.store.sql: LIMIT in index order, then the horizon.
# ORDER BY names the table's columns: a bare name would bind to the text xid.
READ_ALL = (
    "SELECT event_id, stream_id, stream_type, version, xid, global_position, event_type, "
    "schema_version, data, metadata, recorded_at FROM ("
    "SELECT event_id, stream_id, stream_type, version, transaction_id::text AS xid, "
    "global_position, event_type, schema_version, data, metadata, recorded_at, "
    "events.transaction_id AS sort_xid FROM events "
    "WHERE (transaction_id, global_position) > (%s::xid8, %s) "
    "ORDER BY events.transaction_id, events.global_position LIMIT %s) page "
    "WHERE sort_xid < (SELECT pg_snapshot_xmin(pg_current_snapshot())) "
    "ORDER BY sort_xid, global_position"
)


class Conflict(Exception):
    """The raw side's version check failed."""


def conninfo(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as a libpq URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: str, schema: str, **kwargs: Any) -> Conn:
    """A psycopg connection with ``schema`` first on its search path."""
    return psycopg.connect(conninfo(url), options=f"-csearch_path={schema},public", **kwargs)


def _insert_events(
    conn: Conn, stream_id: str, stream_type: str, first: int, events: Sequence[Payload]
) -> None:
    if len(events) == 1:
        etype, data = events[0]
        conn.execute(
            INSERT_ONE, (uuid.uuid4(), stream_id, stream_type, first, etype, json.dumps(data))
        )
        return
    conn.execute(
        INSERT_MANY,
        (
            stream_id,
            stream_type,
            [uuid.uuid4() for _ in events],
            list(range(first, first + len(events))),
            [etype for etype, _ in events],
            "[" + ",".join(json.dumps(data) for _, data in events) + "]",
        ),
    )


def append_new(conn: Conn, stream_id: str, stream_type: str, events: Sequence[Payload]) -> int:
    """Create ``stream_id`` with ``events``; raises :class:`Conflict` if it exists."""
    if conn.execute(INSERT_STREAM, (stream_id, stream_type, len(events))).fetchone() is None:
        raise Conflict(stream_id)
    _insert_events(conn, stream_id, stream_type, 1, events)
    return len(events)


def append_expected(
    conn: Conn, stream_id: str, stream_type: str, expected: int, events: Sequence[Payload]
) -> int:
    """Append at ``expected`` version (compare-and-set); raises :class:`Conflict`."""
    if conn.execute(BUMP_STREAM, (len(events), stream_id, expected)).fetchone() is None:
        raise Conflict(stream_id)
    _insert_events(conn, stream_id, stream_type, expected + 1, events)
    return expected + len(events)


def read_stream(conn: Conn, stream_id: str) -> list[Row]:
    """The stream's rows in version order (``data`` parsed into dicts by psycopg)."""
    return conn.execute(READ_STREAM, (stream_id,)).fetchall()


def read_all_page(conn: Conn, after: tuple[int, int], limit: int) -> list[Row]:
    """One page of the gap-free log after ``(transaction_id, global_position)``."""
    return conn.execute(READ_ALL, (str(after[0]), after[1], limit)).fetchall()
