"""Internal: how autogenerate writes the partition operations into a revision file."""

from __future__ import annotations

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext

from cqrs.migrations import ops


def _args(*pairs: tuple[str, object]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in pairs)


@renderers.dispatch_for(ops.EnsureEventPartitionsOp)
def _ensure(context: AutogenContext, op: ops.EnsureEventPartitionsOp) -> str:
    args = _args(("months_ahead", op.months_ahead), ("hash_partitions", op.hash_partitions))
    return f"op.ensure_event_partitions({args})"


@renderers.dispatch_for(ops.CreateEventPartitionsOp)
def _create(context: AutogenContext, op: ops.CreateEventPartitionsOp) -> str:
    if op.modulus is not None:
        return f"op.create_event_partitions(modulus={op.modulus!r})"
    start = "None" if op.start is None else f"datetime.date.fromisoformat({op.start.isoformat()!r})"
    context.imports.add("import datetime")
    return f"op.create_event_partitions(start={start}, months={op.months!r})"


@renderers.dispatch_for(ops.DetachEventPartitionOp)
def _detach(context: AutogenContext, op: ops.DetachEventPartitionOp) -> str:
    args = _args(("concurrently", op.concurrently), ("force", op.force))
    return f"op.detach_event_partition({op.name!r}, {args})"


@renderers.dispatch_for(ops.ArchiveEventPartitionOp)
def _archive(context: AutogenContext, op: ops.ArchiveEventPartitionOp) -> str:
    args = _args(("schema", op.schema), ("to_file", op.to_file), ("force", op.force))
    return f"op.archive_event_partition({op.name!r}, {args})"


@renderers.dispatch_for(ops.CreateIndexOnPartitionedOp)
def _index(context: AutogenContext, op: ops.CreateIndexOnPartitionedOp) -> str:
    return (
        f"op.create_index_on_partitioned({op.index_name!r}, {op.table_name!r}, "
        f"{op.columns!r}, unique={op.unique!r})"
    )


@renderers.dispatch_for(ops.ImportLegacyEventsOp)
def _import(context: AutogenContext, op: ops.ImportLegacyEventsOp) -> str:
    args = _args(
        ("partitioning", op.partitioning),
        ("months_ahead", op.months_ahead),
        ("hash_partitions", op.hash_partitions),
        ("keep_source_as", op.keep_source_as),
    )
    if not op.create_tables:
        args += ", create_tables=False"
    return f"op.import_legacy_events({op.source!r}, {args})"


@renderers.dispatch_for(ops.GrantCqrsRolesOp)
def _grant(context: AutogenContext, op: ops.GrantCqrsRolesOp) -> str:
    args = _args(
        ("service", op.service),
        ("runner", op.runner),
        ("migrator", op.migrator),
        ("service_tables", list(op.service_tables)),
        ("runner_tables", list(op.runner_tables)),
        ("create", op.create),
        ("schema", op.schema),
    )
    return f"op.grant_cqrs_roles({args})"
