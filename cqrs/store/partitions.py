"""Public: partitions of the ``events`` table: which exist, making the missing ones,
and retiring old ones (detach, archive to a schema or to a file).

New monthly partitions are created as plain tables and then attached, which
takes only ``SHARE UPDATE EXCLUSIVE`` on the parent, so appends keep flowing
while upkeep runs. Old partitions are detached (``CONCURRENTLY`` on an
autocommit connection) and archived; both refuse while the partition holds
events of streams that are not archived, unless forced.

    >>> month_partition_name(date(2026, 11, 1))
    'events_y2026m11'
    >>> ensure_months(conn, date(2025, 1, 1), 1)
    ['events_y2025m01']
    >>> stats = partition_stats(conn)
    >>> archive(conn, "events_y2025m01", schema="cqrs_archive")
    ArchiveResult(...)
"""

from __future__ import annotations

import gzip
import os
import re
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import IO, Any

import attrs
from sqlalchemy import Connection, TextClause, text
from sqlalchemy.schema import CreateSchema

from cqrs.config import Settings
from cqrs.errors import InvalidInput, PartitionInUse
from cqrs.sqlnames import quote, render, statement
from cqrs.store import guards

PARENT = "events"
ARCHIVE_SCHEMA = "cqrs_archive"
PARTITION_NAME = re.compile(r"^events_(y\d{4}m\d{2}|h\d{3}_of_\d{3})$")
"""Names the toolkit gives partitions of ``events`` (attached or detached)."""


@attrs.frozen
class PartitionInfo:
    """One partition of ``events``: its table name and its bound expression."""

    name: str
    bounds: str


def month_partition_name(month: date) -> str:
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def hash_partition_name(remainder: int, modulus: int) -> str:
    return f"{PARENT}_h{remainder:03d}_of_{modulus:03d}"


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def list_partitions(connection: Connection, parent: str = PARENT) -> list[PartitionInfo]:
    """Every partition attached to ``parent`` (default ``events``) in the current schema."""
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent) ORDER BY c.relname"
        ),
        {"parent": quote(connection, parent)},
    )
    return [PartitionInfo(name, bounds) for name, bounds in rows]


def _require_parent(connection: Connection, parent: str, strategy: str) -> None:
    """Refuse a ``parent`` that is not a table partitioned by ``strategy`` here."""
    found = connection.execute(
        text("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = to_regclass(:p)"),
        {"p": quote(connection, parent)},
    ).scalar_one_or_none()
    if found != strategy:
        kind = {"r": "range", "h": "hash"}[strategy]
        raise InvalidInput(
            f"{parent!r} is not a {kind}-partitioned table on the search path; pass the "
            "name of the partitioned events table (the default, 'events', is the toolkit's)"
        )


def partition_strategy(connection: Connection) -> str | None:
    """``'range'``, ``'hash'``, or ``None`` when ``events`` is missing or not partitioned."""
    strategy = connection.execute(
        text("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = to_regclass(:p)"),
        {"p": PARENT},
    ).scalar_one_or_none()
    return {"r": "range", "h": "hash"}.get(strategy or "")


_MONTH_BOUND = "ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"
_MONTH_CHECK = (
    "ALTER TABLE {name} ADD CONSTRAINT {constraint} "
    "CHECK (recorded_at IS NOT NULL AND recorded_at >= {lo} AND recorded_at < {hi})"
)
_HASH_BOUND = (
    "ALTER TABLE {parent} ATTACH PARTITION {name} "
    "FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder})"
)


def _attach(
    connection: Connection,
    name: str,
    bound: str,
    check: str | None,
    parent: str,
    **bounds: int | datetime,
) -> None:
    """Create ``name`` like ``parent`` and attach it; ``bound``/``check`` are templates."""
    names = {"name": name, "parent": parent, "constraint": f"{name}_bound"}
    connection.execute(
        statement(
            connection,
            "CREATE TABLE IF NOT EXISTS {name} (LIKE {parent} INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS)",
            **names,
        )
    )
    if check is not None:  # lets ATTACH skip its validation scan
        connection.execute(statement(connection, check, **names, **bounds))
    connection.execute(statement(connection, bound, **names, **bounds))
    if check is not None:
        connection.execute(
            statement(connection, "ALTER TABLE {name} DROP CONSTRAINT {constraint}", **names)
        )
    if parent == PARENT:  # row triggers came with ATTACH; TRUNCATE's does not
        guards.guard_partition(connection, name)


def ensure_months(
    connection: Connection, first: date, count: int, *, parent: str = PARENT
) -> list[str]:
    """Create the monthly partitions for ``count`` months from ``first``; return the new ones.

    ``parent`` is a table name (quoted, never spliced into the SQL); one that is not a
    range-partitioned table on the search path raises :class:`~cqrs.errors.InvalidInput`
    before anything is created.

    >>> ensure_months(conn, date(2024, 11, 1), 2)
    ['events_y2024m11', 'events_y2024m12']
    """
    _require_parent(connection, parent, "r")
    existing = {p.name for p in list_partitions(connection, parent)}
    created = []
    for i in range(count):
        start = add_months(first.replace(day=1), i)
        end = add_months(start, 1)
        name = month_partition_name(start)
        if name in existing:
            continue
        lo, hi = (datetime.combine(d, time(), tzinfo=UTC) for d in (start, end))
        _attach(connection, name, _MONTH_BOUND, _MONTH_CHECK, parent, lo=lo, hi=hi)
        created.append(name)
    return created


def ensure_hash(connection: Connection, modulus: int, *, parent: str = PARENT) -> list[str]:
    """Create any of the ``modulus`` hash partitions that are missing.

    ``parent`` as for :func:`ensure_months`, but hash-partitioned.
    """
    _require_parent(connection, parent, "h")
    existing = {p.name for p in list_partitions(connection, parent)}
    created = []
    for remainder in range(modulus):
        name = hash_partition_name(remainder, modulus)
        if name not in existing:
            bounds = {"modulus": modulus, "remainder": remainder}
            _attach(connection, name, _HASH_BOUND, None, parent, **bounds)
            created.append(name)
    return created


def _hash_modulus(connection: Connection) -> int | None:
    """The modulus the existing hash partitions use (fixed when the table was made)."""
    for p in list_partitions(connection):
        found = re.search(r"modulus (\d+)", p.bounds, re.IGNORECASE)
        if found:
            return int(found.group(1))
    return None


def ensure(connection: Connection, settings: Settings, *, today: date | None = None) -> list[str]:
    """Make the partitions ``settings`` asks for exist; return the names created.

    For the monthly layout that is the current month (UTC, by the database
    clock unless ``today`` is given) and ``settings.months_ahead`` after it. For
    the hash layout it is the missing partitions of the modulus the table was
    made with (``settings.hash_partitions`` only counts for a table without any).
    """
    strategy = partition_strategy(connection)
    if strategy == "hash":
        return ensure_hash(connection, _hash_modulus(connection) or settings.hash_partitions)
    if today is None:
        today = connection.execute(text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
    return ensure_months(connection, today, settings.months_ahead + 1)


def missing(
    connection: Connection,
    settings: Settings,
    *,
    today: date | None = None,
    months_ahead: int | None = None,
) -> list[str]:
    """The partitions ``ensure`` would create now, without creating them
    (``months_ahead`` overrides ``settings.months_ahead``)."""
    existing = {p.name for p in list_partitions(connection)}
    if partition_strategy(connection) == "hash":
        modulus = _hash_modulus(connection) or settings.hash_partitions
        wanted = [hash_partition_name(r, modulus) for r in range(modulus)]
    else:
        if today is None:
            today = connection.execute(text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
        ahead = settings.months_ahead if months_ahead is None else months_ahead
        first = today.replace(day=1)
        wanted = [month_partition_name(add_months(first, i)) for i in range(ahead + 1)]
    return [name for name in wanted if name not in existing]


def can_manage(connection: Connection) -> bool:
    """Whether the connection's role may attach and detach partitions of ``events``:
    a member of its owner (the migrator, see ``cqrs.roles``) or a superuser."""
    allowed = connection.execute(
        text(
            "SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c "
            "WHERE c.oid = to_regclass(:p)"
        ),
        {"p": PARENT},
    ).scalar_one_or_none()
    return bool(allowed)


@attrs.frozen
class PartitionStats:
    """A partition of ``events`` (or a detached one still in this schema) and its size.

    ``rows`` is the planner's estimate unless listed with ``exact=True``
    (``None`` when the table was never analysed); ``bytes`` includes indexes.
    """

    name: str
    bounds: str | None
    attached: bool
    rows: int | None
    bytes: int
    exact: bool


def partition_stats(connection: Connection, *, exact: bool = False) -> list[PartitionStats]:
    """Attached partitions of ``events`` and detached ones (toolkit names), with sizes.

    >>> [(p.name, p.attached) for p in partition_stats(conn)]  # the months around today
    [('events_y...', True), ('events_y...', True), ...]
    """
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.relispartition, "
            "       c.reltuples::bigint, pg_total_relation_size(c.oid) "
            "FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
            "  AND c.relname ~ :pattern ORDER BY c.relname"
        ),
        {"pattern": PARTITION_NAME.pattern},
    ).all()
    result = []
    for name, bounds, attached, estimate, size in rows:
        if exact:
            count = connection.execute(_count(connection, name))
            estimate = count.scalar_one()
        result.append(
            PartitionStats(
                name=name,
                bounds=bounds if attached else None,
                attached=bool(attached),
                rows=None if estimate < 0 else int(estimate),
                bytes=int(size),
                exact=exact,
            )
        )
    return result


def _require(connection: Connection, name: str, *, attached: bool | None) -> bool:
    """Check ``name`` is a toolkit partition here; answer whether it is attached."""
    if not PARTITION_NAME.match(name):
        raise InvalidInput(
            f"{name!r} is not a partition name of the events table "
            "(events_yYYYYmMM or events_hNNN_of_NNN); `cqrs partitions list` shows them"
        )
    found = {p.name: p.attached for p in partition_stats(connection)}
    if name not in found:
        raise InvalidInput(
            f"no table {name!r} in the current schema; `cqrs partitions list` shows the "
            "partitions there are"
        )
    if attached is not None and found[name] != attached:
        state = "attached to" if found[name] else "detached from"
        raise InvalidInput(f"{name!r} is already {state} events; nothing to do")
    return found[name]


def live_streams_in(connection: Connection, name: str, limit: int = 5) -> list[str]:
    """Up to ``limit`` stream ids with events in partition ``name`` that are not archived."""
    rows = connection.execute(
        statement(
            connection,
            "SELECT DISTINCT p.stream_id FROM {name} p "
            "JOIN streams s ON s.stream_id = p.stream_id "
            "WHERE NOT s.archived ORDER BY p.stream_id LIMIT :n",
            name=name,
        ),
        {"n": limit},
    )
    return list(rows.scalars())


def _refuse_hash(name: str) -> None:
    if name.startswith("events_h"):
        raise InvalidInput(
            f"{name!r} is a hash partition: every stream id hashes into one of them, so "
            "without it appends to a share of all streams would fail; attached hash "
            "partitions are never detached or archived (not even with force). Retire "
            "whole streams with EventStore.archive, or move to the monthly layout for "
            "time-based retention"
        )


def _refuse_if_live(connection: Connection, name: str) -> None:
    live = live_streams_in(connection, name)
    if live:
        raise PartitionInUse(name, live)


def _autocommit(connection: Connection) -> bool:
    driver = connection.connection.driver_connection
    return bool(getattr(driver, "autocommit", False))


def detach(
    connection: Connection, name: str, *, concurrently: bool = False, force: bool = False
) -> None:
    """Detach partition ``name`` from ``events``; the table stays, as a plain table.

    ``concurrently=True`` takes only ``SHARE UPDATE EXCLUSIVE`` on ``events`` (appends
    and reads go on) but needs an autocommit connection
    (``engine.connect().execution_options(isolation_level="AUTOCOMMIT")``); a detach
    that was interrupted half-way is finished (``FINALIZE``). Without it the detach
    is one quick step in the caller's transaction that briefly locks ``events``.
    Refuses (``PartitionInUse``) while streams that are not archived have events
    there, unless ``force``; always refuses a hash partition (``InvalidInput``):
    every stream hashes into one, so its absence would break appends.

    >>> ensure_months(autocommit_conn, date(2025, 1, 1), 1)
    ['events_y2025m01']
    >>> detach(autocommit_conn, "events_y2025m01", concurrently=True)
    """
    _require(connection, name, attached=True)
    _refuse_hash(name)
    if concurrently and not _autocommit(connection):
        raise InvalidInput(
            "DETACH PARTITION CONCURRENTLY cannot run inside a transaction; use an "
            'autocommit connection (execution_options(isolation_level="AUTOCOMMIT")) '
            "or pass concurrently=False"
        )
    if not force:
        _refuse_if_live(connection, name)
    pending = connection.execute(
        text(
            "SELECT i.inhdetachpending FROM pg_inherits i "
            "WHERE i.inhrelid = to_regclass(:name) AND i.inhparent = to_regclass(:parent)"
        ),
        {"name": name, "parent": PARENT},
    ).scalar_one()
    mode = "FINALIZE" if pending else ("CONCURRENTLY" if concurrently else "")
    connection.execute(statement(connection, _DETACH[mode], parent=PARENT, name=name))


_DETACH = {
    "FINALIZE": "ALTER TABLE {parent} DETACH PARTITION {name} FINALIZE",
    "CONCURRENTLY": "ALTER TABLE {parent} DETACH PARTITION {name} CONCURRENTLY",
    "": "ALTER TABLE {parent} DETACH PARTITION {name}",
}


def _count(connection: Connection, name: str) -> TextClause:
    return statement(connection, "SELECT count(*) FROM {name}", name=name)


@attrs.frozen
class ArchiveResult:
    """Where an archived partition went and how many rows it held."""

    name: str
    rows: int
    destination: str


def archive(
    connection: Connection,
    name: str,
    *,
    schema: str | None = ARCHIVE_SCHEMA,
    to_file: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> ArchiveResult:
    """Move partition ``name`` out of the live schema: into ``schema``, or to a file.

    An attached partition is detached first (in this transaction; detach it
    ``concurrently`` beforehand on a busy system). With ``to_file`` the rows are
    exported with ``COPY ... TO STDOUT (FORMAT csv, HEADER)`` into a new local file
    (gzip when the name ends in ``.gz``) and the table is dropped once every row
    is written; an existing file is never overwritten. Refuses
    (``PartitionInUse``) while streams that are not archived have events there,
    unless ``force``, and always refuses an attached hash partition.

    >>> archive(conn, "events_y2025m01", to_file="/backups/events_y2025m01.csv.gz")
    ...     # not run: it writes under /backups  # doctest: +SKIP
    """
    attached = _require(connection, name, attached=None)
    if attached:
        _refuse_hash(name)
    if to_file is None and not schema:
        raise InvalidInput("archive needs a schema or a file: pass schema=... or to_file=...")
    if to_file is not None and Path(to_file).exists():
        raise InvalidInput(f"{to_file} already exists; choose a new file name")
    if to_file is not None and not Path(to_file).parent.is_dir():
        raise InvalidInput(
            f"cannot write {to_file}: the directory {Path(to_file).parent} does not exist; "
            "create it first or choose another path"
        )
    if not force:
        _refuse_if_live(connection, name)
    if attached:
        detach(connection, name, concurrently=False, force=True)
    if to_file is not None:
        return _archive_to_file(connection, name, Path(to_file))
    assert schema is not None
    qualified = render(connection, "{schema}.{name}", schema=schema, name=name)
    clash = connection.execute(
        text("SELECT to_regclass(:q) IS NOT NULL"), {"q": qualified}
    ).scalar_one()
    if clash:
        raise InvalidInput(
            f"{schema}.{name} already exists; archive into another schema or drop the old copy"
        )
    rows = connection.execute(_count(connection, name)).scalar_one()
    have = connection.execute(
        text("SELECT to_regnamespace(:s) IS NOT NULL"), {"s": quote(connection, schema)}
    )
    if not have.scalar_one():  # even IF NOT EXISTS needs CREATE on the database
        connection.execute(CreateSchema(schema))
    connection.execute(
        statement(connection, "ALTER TABLE {name} SET SCHEMA {schema}", name=name, schema=schema)
    )
    return ArchiveResult(name, int(rows), f"{schema}.{name}")


def _open(path: Path, compress: bool) -> IO[bytes]:
    if compress:
        return gzip.open(path, "xb")  # type: ignore[return-value]
    return path.open("xb")


_EXPORT = "COPY (SELECT * FROM {name} ORDER BY global_position) TO STDOUT (FORMAT csv, HEADER)"


def _archive_to_file(connection: Connection, name: str, path: Path) -> ArchiveResult:
    if path.exists():
        raise InvalidInput(f"{path} already exists; choose a new file name")
    expected = connection.execute(_count(connection, name)).scalar_one()
    driver: Any = connection.connection.driver_connection
    partial = path.with_name(path.name + ".partial")
    try:
        with _open(partial, path.suffix == ".gz") as out, driver.cursor() as cursor:
            export = render(connection, _EXPORT, name=name)
            with cursor.copy(export) as copy:
                for chunk in copy:
                    out.write(chunk)
            written = cursor.rowcount
            out.flush()
        if written != expected:
            raise InvalidInput(f"exported {written} rows of {name} but it holds {expected}")
        partial.rename(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    connection.execute(statement(connection, "DROP TABLE {name}", name=name))
    return ArchiveResult(name, int(expected), str(path))
