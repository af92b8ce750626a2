"""Internal: what each partition operation of ``cqrs.migrations.ops`` does.

Registered with ``Operations.implementation_for``, like Alembic's ``toimpl``.
Operations that PostgreSQL refuses inside a transaction (``CREATE INDEX
CONCURRENTLY``, ``DETACH PARTITION ... CONCURRENTLY``) run in
``autocommit_block()``, which commits the migration's transaction first: give
such migrations a revision file of their own (or ``transaction_per_migration``).

Offline (``alembic upgrade ... --sql``), ``ensure_event_partitions`` and
``create_event_partitions`` are written out as ``CREATE TABLE IF NOT EXISTS ...
PARTITION OF events`` statements for the months counted from the day the SQL is
generated (UTC; or the op's ``today`` / ``start``), or for the op's hash modulus,
in the layout ``migration_settings`` names. The operations that must read the
catalog raise ``OfflineMigrationUnsupported`` (``FAILED: ...`` at the shell).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

from alembic.operations import Operations
from sqlalchemy import Connection, text

from cqrs.config import Settings
from cqrs.errors import ConfigurationError, OfflineMigrationUnsupported
from cqrs.migrations import ops
from cqrs.migrations.failures import for_alembic
from cqrs.sqlnames import quote, statement
from cqrs.store import partitions

OFFLINE_ALTERNATIVE = (
    "run this revision online (`alembic upgrade <revision>` against the database), or do "
    "the step with `cqrs partitions ...` and render only the other revisions "
    "(`alembic upgrade <from>:<to> --sql`)"
)


def _bind(operations: Operations, what: str) -> Connection:
    if operations.get_context().as_sql:
        raise for_alembic(OfflineMigrationUnsupported)(what, OFFLINE_ALTERNATIVE)
    return operations.get_bind()


def _offline(operations: Operations) -> bool:
    return bool(operations.get_context().as_sql)


def _offline_layout(operations: Operations) -> str:
    """The ``events`` layout an offline script is written for (no catalog to ask)."""
    from cqrs.migrations.service import migration_settings

    config = operations.get_context().config
    settings = migration_settings(config) if config is not None else Settings.from_env()
    return settings.partitioning


def offline_month_partitions(first: date, count: int) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS ... PARTITION OF events`` for ``count`` months.

    >>> offline_month_partitions(date(2026, 12, 5), 1)[0]  # doctest: +NORMALIZE_WHITESPACE
    "CREATE TABLE IF NOT EXISTS events_y2026m12 PARTITION OF events FOR VALUES
    FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')"
    """
    statements = []
    for i in range(count):
        start = partitions.add_months(first.replace(day=1), i)
        end = partitions.add_months(start, 1)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {partitions.month_partition_name(start)} "
            f"PARTITION OF {partitions.PARENT} FOR VALUES "
            f"FROM ('{start.isoformat()} 00:00:00+00') TO ('{end.isoformat()} 00:00:00+00')"
        )
    return statements


def offline_hash_partitions(modulus: int) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS ... PARTITION OF events`` for each hash remainder."""
    return [
        f"CREATE TABLE IF NOT EXISTS {partitions.hash_partition_name(r, modulus)} "
        f"PARTITION OF {partitions.PARENT} "
        f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {r})"
        for r in range(modulus)
    ]


def _utc_today() -> date:
    return datetime.now(UTC).date()


def _outside_transaction(operations: Operations, what: str) -> Any:
    """``autocommit_block()``, with a clear error where Alembic cannot provide one."""
    context = operations.get_context()
    owned = getattr(context, "_transaction", None) is not None
    if operations.get_bind().in_transaction() and not owned:
        raise ConfigurationError(
            f"op.{what} runs CONCURRENTLY, which PostgreSQL forbids inside a transaction, and "
            "this connection is in one that Alembic does not own; run it from a migration, "
            "or commit before calling it"
        )
    return context.autocommit_block()


@Operations.implementation_for(ops.EnsureEventPartitionsOp)
def ensure_event_partitions(operations: Operations, op: ops.EnsureEventPartitionsOp) -> None:
    if _offline(operations):
        if _offline_layout(operations) == "hash":
            statements = offline_hash_partitions(op.hash_partitions)
        else:
            statements = offline_month_partitions(op.today or _utc_today(), op.months_ahead + 1)
        for statement in statements:
            operations.execute(statement)
        return
    settings = Settings(months_ahead=op.months_ahead, hash_partitions=op.hash_partitions)
    partitions.ensure(_bind(operations, "ensure_event_partitions"), settings, today=op.today)


@Operations.implementation_for(ops.CreateEventPartitionsOp)
def create_event_partitions(operations: Operations, op: ops.CreateEventPartitionsOp) -> None:
    if (op.modulus is None) == (op.months is None):
        raise ConfigurationError(
            "op.create_event_partitions needs months=N (range layout) or modulus=N (hash)"
        )
    if _offline(operations):
        if op.modulus is not None:
            statements = offline_hash_partitions(op.modulus)
        else:
            assert op.months is not None
            statements = offline_month_partitions(op.start or _utc_today(), op.months)
        for statement in statements:
            operations.execute(statement)
        return
    conn = _bind(operations, "create_event_partitions")
    if op.modulus is not None:
        partitions.ensure_hash(conn, op.modulus)
        return
    assert op.months is not None
    start = op.start
    if start is None:
        start = conn.execute(text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
    assert isinstance(start, date)
    partitions.ensure_months(conn, start, op.months)


@Operations.implementation_for(ops.DetachEventPartitionOp)
def detach_event_partition(operations: Operations, op: ops.DetachEventPartitionOp) -> None:
    _bind(operations, "detach_event_partition")
    if not op.concurrently:
        partitions.detach(operations.get_bind(), op.name, force=op.force)
        return
    with _outside_transaction(operations, "detach_event_partition"):
        partitions.detach(operations.get_bind(), op.name, concurrently=True, force=op.force)


@Operations.implementation_for(ops.ArchiveEventPartitionOp)
def archive_event_partition(operations: Operations, op: ops.ArchiveEventPartitionOp) -> None:
    conn = _bind(operations, "archive_event_partition")
    partitions.archive(conn, op.name, schema=op.schema, to_file=op.to_file, force=op.force)


def child_index_name(index_name: str, partition: str) -> str:
    """The name of ``index_name``'s index on ``partition`` (at most 63 bytes)."""
    name = f"{partition}_{index_name}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:54]}_{digest}"


@Operations.implementation_for(ops.CreateIndexOnPartitionedOp)
def create_index_on_partitioned(operations: Operations, op: ops.CreateIndexOnPartitionedOp) -> None:
    bind = _bind(operations, "create_index_on_partitioned")
    # One {c0}, {c1}, ... field per column: each is quoted as an identifier.
    columns = {f"c{i}": name for i, name in enumerate(op.columns)}
    fields = ", ".join(f"{{{field}}}" for field in columns)
    unique = "UNIQUE " if op.unique else ""
    on_parent = f"CREATE {unique}INDEX IF NOT EXISTS {{index}} ON ONLY {{table}} ({fields})"
    on_child = f"CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {{child}} ON {{table}} ({fields})"
    with _outside_transaction(operations, "create_index_on_partitioned"):
        conn = operations.get_bind()
        conn.execute(
            statement(conn, on_parent, index=op.index_name, table=op.table_name, **columns)
        )
        children = [p.name for p in partitions.list_partitions(conn, op.table_name)]
        for partition in children:
            child = child_index_name(op.index_name, partition)
            valid = conn.execute(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:i)"),
                {"i": quote(bind, child)},
            ).scalar_one_or_none()
            if valid is False:  # left behind by an interrupted CREATE INDEX CONCURRENTLY
                conn.execute(statement(conn, "DROP INDEX CONCURRENTLY {child}", child=child))
            conn.execute(statement(conn, on_child, child=child, table=partition, **columns))
            attached = conn.execute(
                text(
                    "SELECT 1 FROM pg_inherits "
                    "WHERE inhrelid = to_regclass(:c) AND inhparent = to_regclass(:p)"
                ),
                {"c": quote(bind, child), "p": quote(bind, op.index_name)},
            ).first()
            if attached is None:
                conn.execute(
                    statement(
                        conn,
                        "ALTER INDEX {index} ATTACH PARTITION {child}",
                        index=op.index_name,
                        child=child,
                    )
                )


@Operations.implementation_for(ops.ImportLegacyEventsOp)
def import_legacy_events(operations: Operations, op: ops.ImportLegacyEventsOp) -> None:
    from cqrs.migrations.legacy import import_legacy_events as run

    settings = Settings(
        partitioning=op.partitioning,  # type: ignore[arg-type]
        months_ahead=op.months_ahead,
        hash_partitions=op.hash_partitions,
    )
    conn = _bind(operations, "import_legacy_events")
    run(
        conn,
        source=op.source,
        settings=settings,
        keep_source_as=op.keep_source_as,
        create_tables=op.create_tables,
    )
