"""Internal: what each partition operation of ``cqrs.migrations.ops`` does.

Registered with ``Operations.implementation_for``, like Alembic's ``toimpl``.
Operations that PostgreSQL refuses inside a transaction (``CREATE INDEX
CONCURRENTLY``, ``DETACH PARTITION ... CONCURRENTLY``) run in
``autocommit_block()``, which commits the migration's transaction first: give
such migrations a revision file of their own (or ``transaction_per_migration``).
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from alembic.operations import Operations
from sqlalchemy import Connection, text

from cqrs.config import Settings
from cqrs.errors import ConfigurationError
from cqrs.migrations import ops
from cqrs.store import partitions


def _bind(operations: Operations, what: str) -> Connection:
    if operations.get_context().as_sql:
        raise ConfigurationError(
            f"op.{what} reads the database's catalog and cannot run in offline (--sql) mode; "
            "run the migration online"
        )
    return operations.get_bind()


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
    settings = Settings(months_ahead=op.months_ahead, hash_partitions=op.hash_partitions)
    partitions.ensure(_bind(operations, "ensure_event_partitions"), settings, today=op.today)


@Operations.implementation_for(ops.CreateEventPartitionsOp)
def create_event_partitions(operations: Operations, op: ops.CreateEventPartitionsOp) -> None:
    conn = _bind(operations, "create_event_partitions")
    if (op.modulus is None) == (op.months is None):
        raise ConfigurationError(
            "op.create_event_partitions needs months=N (range layout) or modulus=N (hash)"
        )
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
    prep = _bind(operations, "create_index_on_partitioned").dialect.identifier_preparer
    columns = ", ".join(prep.quote(c) for c in op.columns)
    unique = "UNIQUE " if op.unique else ""
    table, parent_index = prep.quote(op.table_name), prep.quote(op.index_name)
    with _outside_transaction(operations, "create_index_on_partitioned"):
        conn = operations.get_bind()
        conn.execute(
            text(f"CREATE {unique}INDEX IF NOT EXISTS {parent_index} ON ONLY {table} ({columns})")
        )
        children = [p.name for p in partitions.list_partitions(conn, op.table_name)]
        for partition in children:
            child = child_index_name(op.index_name, partition)
            valid = conn.execute(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:i)"),
                {"i": prep.quote(child)},
            ).scalar_one_or_none()
            if valid is False:  # left behind by an interrupted CREATE INDEX CONCURRENTLY
                conn.execute(text(f"DROP INDEX CONCURRENTLY {prep.quote(child)}"))
            conn.execute(
                text(
                    f"CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {prep.quote(child)} "
                    f"ON {prep.quote(partition)} ({columns})"
                )
            )
            attached = conn.execute(
                text(
                    "SELECT 1 FROM pg_inherits "
                    "WHERE inhrelid = to_regclass(:c) AND inhparent = to_regclass(:p)"
                ),
                {"c": prep.quote(child), "p": parent_index},
            ).first()
            if attached is None:
                conn.execute(
                    text(f"ALTER INDEX {parent_index} ATTACH PARTITION {prep.quote(child)}")
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


@Operations.implementation_for(ops.GrantCqrsRolesOp)
def grant_cqrs_roles(operations: Operations, op: ops.GrantCqrsRolesOp) -> None:
    from cqrs.roles import CqrsRoles, grant_statements

    roles = CqrsRoles(
        service=op.service,
        runner=op.runner,
        migrator=op.migrator,
        service_tables=op.service_tables,
        runner_tables=op.runner_tables,
        create=op.create,
    )
    context = operations.get_context()
    schema = op.schema
    if schema is None and context.as_sql:  # offline: no connection to ask
        schema = "public"
    elif schema is None:
        schema = operations.get_bind().execute(text("SELECT current_schema()")).scalar_one()
    quote = context.dialect.identifier_preparer.quote
    for statement in grant_statements(roles, schema=str(schema), quote=quote):
        operations.execute(text(statement.replace(":", "\\:")))
