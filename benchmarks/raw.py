"""Internal: the baseline: the fastest hand-written psycopg 3 program for each job.

It shares nothing with the toolkit (no SQL, table or helper of ``cqrs``): one
plain table of its own, the least SQL that does the observable job, and
``json`` from the standard library::

    raw_events (position bigint identity PRIMARY KEY, stream_id, version, type,
                data jsonb, UNIQUE (stream_id, version))

* a single-event command is one autocommit ``INSERT``; the unique key is the
  version check (a clash raises ``UniqueViolation``, the caller's conflict);
* loading a stream is one ``SELECT`` (payloads as text, ``json.loads``);
* a batch is one ``COPY`` in one transaction;
* ``read_all`` pages by plain ``position > %s`` (correct only while one
  writer commits at a time: the locked variant below is the one that is);
* a projection is one ``unnest`` upsert plus a checkpoint update per batch;
* ``append_locked`` takes one transaction-scoped advisory lock per write, so
  positions are handed out in commit order: the cost of gap-free ordering by
  locking, what the concurrent workload compares against.

    >>> with connect(url, schema, autocommit=True) as conn:     # doctest: +SKIP
    ...     create_tables(conn)
    ...     append_one(conn, "acct-1", 1, "bench.deposited", '{"amount": "1"}')
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

Row = tuple[Any, ...]
Conn = psycopg.Connection[Row]

TABLE = """
CREATE TABLE raw_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL,
    version integer NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    UNIQUE (stream_id, version)
)
"""
CHECKPOINTS = "CREATE TABLE raw_checkpoints (name text PRIMARY KEY, position bigint NOT NULL)"


SAVE_CHECKPOINT = "UPDATE raw_checkpoints SET position = %s WHERE name = %s"


def reset_checkpoint(conn: Conn, name: str) -> None:
    """Projection ``name`` starts from the beginning of the log."""
    conn.execute(
        "INSERT INTO raw_checkpoints VALUES (%s, 0) ON CONFLICT (name) DO UPDATE SET position = 0",
        (name,),
    )


def claim_checkpoint(conn: Conn, name: str) -> int:
    """Projection ``name``'s position, its row locked to the end of the transaction."""
    row = conn.execute(
        "SELECT position FROM raw_checkpoints WHERE name = %s FOR UPDATE", (name,)
    ).fetchone()
    return int(row[0]) if row else 0


INSERT = "INSERT INTO raw_events (stream_id, version, type, data) VALUES (%s, %s, %s, %s)"
# One statement, one round trip: the lock is taken before the row's position is drawn
# and released at commit, so positions become visible in order.
INSERT_LOCKED = (
    "INSERT INTO raw_events (stream_id, version, type, data) "
    "SELECT %s, %s, %s, %s FROM (SELECT pg_advisory_xact_lock(%s)) AS lock"
)
LOAD = "SELECT version, type, data::text FROM raw_events WHERE stream_id = %s ORDER BY version"
COPY = "COPY raw_events (stream_id, version, type, data) FROM STDIN"
PAGE = (
    "SELECT position, stream_id, version, type, data::text FROM raw_events "
    "WHERE position > %s ORDER BY position LIMIT %s"
)
PAGE_OF_TYPE = (
    "SELECT position, stream_id, version, type, data::text FROM raw_events "
    "WHERE type = %s AND position > %s ORDER BY position LIMIT %s"
)
TYPE_INDEX = "CREATE INDEX raw_events_type ON raw_events (type, position)"
LOCK_KEY = 7_340_514  # any constant: every locked writer takes the same one


class Conflict(Exception):
    """The version check failed: the stream already holds that version."""


def conninfo(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as a libpq URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: str, schema: str, **kwargs: Any) -> Conn:
    """A psycopg connection with ``schema`` first on its search path."""
    return psycopg.connect(conninfo(url), options=f"-csearch_path={schema},public", **kwargs)


def create_tables(conn: Conn) -> None:
    """The baseline's event table and checkpoint table, in the connection's schema."""
    conn.execute(TABLE)
    conn.execute(CHECKPOINTS)


def append_one(conn: Conn, stream_id: str, version: int, etype: str, data: str) -> None:
    """One event at ``version`` (1 for a new stream); raises :class:`Conflict` on a clash.

    On an autocommit connection this is the whole command: one round trip.
    """
    try:
        conn.execute(INSERT, (stream_id, version, etype, data))
    except psycopg.errors.UniqueViolation:
        raise Conflict(stream_id) from None


def append_locked(conn: Conn, stream_id: str, version: int, etype: str, data: str) -> None:
    """As :func:`append_one`, holding the advisory lock from position to commit."""
    try:
        conn.execute(INSERT_LOCKED, (stream_id, version, etype, data, LOCK_KEY))
    except psycopg.errors.UniqueViolation:
        raise Conflict(stream_id) from None


def load(conn: Conn, stream_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The stream's ``(version, type, data)`` in version order."""
    rows = conn.execute(LOAD, (stream_id,)).fetchall()
    return [(v, t, json.loads(d)) for v, t, d in rows]


def copy_batch(conn: Conn, rows: Iterable[tuple[str, int, str, str]]) -> None:
    """``(stream_id, version, type, data)`` rows through one ``COPY`` (in one transaction)."""
    with conn.transaction(), conn.cursor() as cur, cur.copy(COPY) as copy:
        for row in rows:
            copy.write_row(row)


def read_page(
    conn: Conn, after: int, limit: int, etype: str | None = None
) -> list[tuple[int, str, int, str, Any]]:
    """Up to ``limit`` events after ``position`` (of ``etype`` only if given), as dicts.

    Filtering by type needs :data:`TYPE_INDEX`, which only the scenario that
    uses it creates (an index the other workloads would pay for on write).
    """
    if etype is None:
        rows = conn.execute(PAGE, (after, limit)).fetchall()
    else:
        rows = conn.execute(PAGE_OF_TYPE, (etype, after, limit)).fetchall()
    return [(p, s, v, t, json.loads(d)) for p, s, v, t, d in rows]


# -- projection -------------------------------------------------------------------

READ_MODEL = (
    "CREATE TABLE {table} (account_id text PRIMARY KEY, amount numeric(12, 2) NOT NULL, "
    "currency text NOT NULL, last_ref text NOT NULL, version integer NOT NULL)"
)
UPSERT = (
    "INSERT INTO {table} (account_id, amount, currency, last_ref, version) "
    "SELECT * FROM unnest(%s::text[], %s::numeric[], %s::text[], %s::text[], %s::int[]) "
    "ON CONFLICT (account_id) DO UPDATE SET amount = EXCLUDED.amount, "
    "currency = EXCLUDED.currency, last_ref = EXCLUDED.last_ref, version = EXCLUDED.version"
)
DEPOSITED = "bench.deposited"


def project(conn: Conn, table: str, name: str, batch: int, *, only_type: bool = False) -> int:
    """Replay ``raw_events`` into ``table`` from scratch; the deposits applied.

    Per batch of ``batch`` events, one transaction: the checkpoint row
    (locked), one page, one ``unnest`` upsert (last write per key wins, as
    applying each in turn would), the checkpoint update. ``only_type`` reads
    only deposits (through :data:`TYPE_INDEX`).
    """
    upsert = UPSERT.format(table=table)
    with conn.transaction():
        conn.execute(f"TRUNCATE {table}")
        reset_checkpoint(conn, name)
    done = 0
    while True:
        with conn.transaction():
            after = claim_checkpoint(conn, name)
            rows = read_page(conn, after, batch, DEPOSITED if only_type else None)
            if not rows:
                return done
            last: dict[str, tuple[str, str, str, str, int]] = {}
            for _, _, version, etype, d in rows:
                if etype == DEPOSITED:
                    key = d["account_id"]
                    last.pop(key, None)
                    last[key] = (key, d["amount"], d["currency"], d["reference"], version)
                    done += 1
            if last:
                conn.execute(upsert, [list(col) for col in zip(*last.values(), strict=True)])
            conn.execute(SAVE_CHECKPOINT, (rows[-1][0], name))


COUNTERS_MODEL = (
    "CREATE TABLE {table} (account_id text PRIMARY KEY, deposits integer NOT NULL, "
    "total numeric(12, 2) NOT NULL, last_ref text NOT NULL)"
)
COUNTERS_UPDATE = (
    "UPDATE {table} AS t SET deposits = t.deposits + u.n, total = t.total + u.s, "
    "last_ref = u.r FROM unnest(%s::text[], %s::int[], %s::numeric[], %s::text[]) "
    "AS u(a, n, s, r) WHERE t.account_id = u.a"
)


def project_counters(conn: Conn, table: str, name: str, batch: int, accounts: list[str]) -> int:
    """The counter idiom by hand: replay ``raw_events`` into ``table`` (one row per
    account, created at zero first); per batch, one ``unnest`` UPDATE adding each
    account's count and sum of the batch and setting its last reference."""
    update = COUNTERS_UPDATE.format(table=table)
    with conn.transaction():
        conn.execute(f"TRUNCATE {table}")
        with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
            for account in accounts:
                copy.write_row((account, 0, 0, ""))
        reset_checkpoint(conn, name)
    done = 0
    while True:
        with conn.transaction():
            after = claim_checkpoint(conn, name)
            rows = read_page(conn, after, batch)
            if not rows:
                return done
            sums: dict[str, list[Any]] = {}
            for _, _, _, etype, d in rows:
                if etype == DEPOSITED:
                    key = d["account_id"]
                    acc = sums.get(key)
                    if acc is None:
                        acc = sums[key] = [key, 0, 0, ""]
                    acc[1] += 1
                    acc[2] += Decimal(d["amount"])
                    acc[3] = d["reference"]
                    done += 1
            if sums:
                conn.execute(update, [list(col) for col in zip(*sums.values(), strict=True)])
            conn.execute(SAVE_CHECKPOINT, (rows[-1][0], name))
