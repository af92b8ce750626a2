"""Public: partitions of the ``events`` table: which exist, and making the missing ones.

New monthly partitions are created as plain tables and then attached, which
takes only ``SHARE UPDATE EXCLUSIVE`` on the parent, so appends keep flowing
while upkeep runs.

    >>> month_partition_name(date(2026, 11, 1))
    'events_y2026m11'
"""

from __future__ import annotations

from datetime import date

import attrs
from sqlalchemy import Connection, text

from cqrs.config import Settings

PARENT = "events"


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


def list_partitions(connection: Connection) -> list[PartitionInfo]:
    """Every partition attached to ``events`` in the current schema, by name."""
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent) ORDER BY c.relname"
        ),
        {"parent": PARENT},
    )
    return [PartitionInfo(name, bounds) for name, bounds in rows]


def partition_strategy(connection: Connection) -> str | None:
    """``'range'``, ``'hash'``, or ``None`` when ``events`` is missing or not partitioned."""
    strategy = connection.execute(
        text("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = to_regclass(:p)"),
        {"p": PARENT},
    ).scalar_one_or_none()
    return {"r": "range", "h": "hash"}.get(strategy or "")


def _attach(connection: Connection, name: str, bound: str, check: str | None) -> None:
    connection.execute(
        text(
            f'CREATE TABLE IF NOT EXISTS "{name}" '
            f"(LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
    )
    if check is not None:  # lets ATTACH skip its validation scan
        connection.execute(
            text(f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_bound" CHECK ({check})')
        )
    connection.execute(text(f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" {bound}'))
    if check is not None:
        connection.execute(text(f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_bound"'))


def ensure_months(connection: Connection, first: date, count: int) -> list[str]:
    """Create the monthly partitions for ``count`` months from ``first``; return the new ones."""
    existing = {p.name for p in list_partitions(connection)}
    created = []
    for i in range(count):
        start = add_months(first.replace(day=1), i)
        end = add_months(start, 1)
        name = month_partition_name(start)
        if name in existing:
            continue
        lo, hi = f"'{start.isoformat()} 00:00:00+00'", f"'{end.isoformat()} 00:00:00+00'"
        _attach(
            connection,
            name,
            f"FOR VALUES FROM ({lo}) TO ({hi})",
            f"recorded_at IS NOT NULL AND recorded_at >= {lo} AND recorded_at < {hi}",
        )
        created.append(name)
    return created


def ensure_hash(connection: Connection, modulus: int) -> list[str]:
    """Create any of the ``modulus`` hash partitions that are missing."""
    existing = {p.name for p in list_partitions(connection)}
    created = []
    for remainder in range(modulus):
        name = hash_partition_name(remainder, modulus)
        if name not in existing:
            bound = f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder})"
            _attach(connection, name, bound, None)
            created.append(name)
    return created


def ensure(connection: Connection, settings: Settings, *, today: date | None = None) -> list[str]:
    """Make the partitions ``settings`` asks for exist; return the names created.

    For the monthly layout that is the current month (UTC, by the database
    clock unless ``today`` is given) and ``settings.months_ahead`` after it.
    """
    strategy = partition_strategy(connection)
    if strategy == "hash":
        return ensure_hash(connection, settings.hash_partitions)
    if today is None:
        today = connection.execute(text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
    return ensure_months(connection, today, settings.months_ahead + 1)
