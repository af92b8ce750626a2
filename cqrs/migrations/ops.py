"""Public: the partition lifecycle as Alembic operations (``op.…`` in migrations).

Each operation is a ``MigrateOperation`` registered with
``Operations.register_operation``, the same way Alembic's own operations are;
their implementations live in ``cqrs.migrations.impl`` and their autogenerate
rendering in ``cqrs.migrations.render``. Importing ``cqrs.migrations`` registers
all of them::

    import cqrs.migrations  # noqa: F401  (registers op.ensure_event_partitions, ...)

    def upgrade() -> None:
        op.ensure_event_partitions(months_ahead=3)
        op.create_index_on_partitioned("ix_events_stream_type", "events", ["stream_type"])
        op.detach_event_partition("events_y2025m01", concurrently=True)
        op.archive_event_partition("events_y2025m01", schema="cqrs_archive")
        op.grant_cqrs_roles(service="orders_app", runner="orders_runner")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from alembic.operations import MigrateOperation, Operations
from alembic.operations.ops import DropIndexOp

__all__ = [
    "ArchiveEventPartitionOp",
    "CreateEventPartitionsOp",
    "CreateIndexOnPartitionedOp",
    "DetachEventPartitionOp",
    "EnsureEventPartitionsOp",
    "GrantCqrsRolesOp",
    "ImportLegacyEventsOp",
]


@Operations.register_operation("ensure_event_partitions")
class EnsureEventPartitionsOp(MigrateOperation):
    """Create the partitions ``events`` needs now: this month and ``months_ahead`` more
    (range layout), or the ``hash_partitions`` hash partitions (hash layout)."""

    def __init__(
        self, months_ahead: int = 3, hash_partitions: int = 8, today: date | None = None
    ) -> None:
        self.months_ahead = months_ahead
        self.hash_partitions = hash_partitions
        self.today = today

    @classmethod
    def ensure_event_partitions(
        cls,
        operations: Operations,
        months_ahead: int = 3,
        hash_partitions: int = 8,
        today: date | None = None,
    ) -> Any:
        """``op.ensure_event_partitions(months_ahead=3)``: idempotent partition upkeep."""
        return operations.invoke(cls(months_ahead, hash_partitions, today))


@Operations.register_operation("create_event_partitions")
class CreateEventPartitionsOp(MigrateOperation):
    """Create given partitions: ``months`` monthly ones from ``start``, or ``modulus``
    hash ones. Partitions that exist already are left alone."""

    def __init__(
        self, start: date | None = None, months: int | None = None, modulus: int | None = None
    ) -> None:
        self.start = start
        self.months = months
        self.modulus = modulus

    @classmethod
    def create_event_partitions(
        cls,
        operations: Operations,
        *,
        start: date | None = None,
        months: int | None = None,
        modulus: int | None = None,
    ) -> Any:
        """``op.create_event_partitions(start=date(2027, 1, 1), months=12)`` or
        ``op.create_event_partitions(modulus=16)``."""
        return operations.invoke(cls(start, months, modulus))


@Operations.register_operation("detach_event_partition")
class DetachEventPartitionOp(MigrateOperation):
    """Detach one partition of ``events`` (``CONCURRENTLY``, outside the transaction)."""

    def __init__(self, name: str, concurrently: bool = True, force: bool = False) -> None:
        self.name = name
        self.concurrently = concurrently
        self.force = force

    @classmethod
    def detach_event_partition(
        cls, operations: Operations, name: str, *, concurrently: bool = True, force: bool = False
    ) -> Any:
        """``op.detach_event_partition("events_y2025m01")``; refuses while live streams
        have events there unless ``force``."""
        return operations.invoke(cls(name, concurrently, force))


@Operations.register_operation("archive_event_partition")
class ArchiveEventPartitionOp(MigrateOperation):
    """Move one (attached or detached) partition into a schema, or out to a file."""

    def __init__(
        self,
        name: str,
        schema: str | None = "cqrs_archive",
        to_file: str | None = None,
        force: bool = False,
    ) -> None:
        self.name = name
        self.schema = schema
        self.to_file = to_file
        self.force = force

    @classmethod
    def archive_event_partition(
        cls,
        operations: Operations,
        name: str,
        *,
        schema: str | None = "cqrs_archive",
        to_file: str | None = None,
        force: bool = False,
    ) -> Any:
        """``op.archive_event_partition("events_y2025m01", schema="cqrs_archive")`` or
        ``..., to_file="/backups/events_y2025m01.csv.gz")``."""
        return operations.invoke(cls(name, schema, to_file, force))


@Operations.register_operation("create_index_on_partitioned")
class CreateIndexOnPartitionedOp(MigrateOperation):
    """Add an index to a live partitioned table without a long lock: ``ON ONLY`` the
    parent, ``CONCURRENTLY`` on each partition (outside the transaction), then
    ``ATTACH`` each to the parent index, which becomes valid with the last one."""

    def __init__(
        self, index_name: str, table_name: str, columns: Sequence[str], unique: bool = False
    ) -> None:
        self.index_name = index_name
        self.table_name = table_name
        self.columns = list(columns)
        self.unique = unique

    @classmethod
    def create_index_on_partitioned(
        cls,
        operations: Operations,
        index_name: str,
        table_name: str,
        columns: Sequence[str],
        *,
        unique: bool = False,
    ) -> Any:
        """``op.create_index_on_partitioned("ix_events_stream_type", "events",
        ["stream_type"])``."""
        return operations.invoke(cls(index_name, table_name, columns, unique))

    def reverse(self) -> DropIndexOp:
        return DropIndexOp(self.index_name, table_name=self.table_name)


@Operations.register_operation("import_legacy_events")
class ImportLegacyEventsOp(MigrateOperation):
    """Move an unpartitioned events table into the partitioned layout (shadow + swap);
    see ``cqrs.migrations.legacy.import_legacy_events`` (also for ``create_tables``)."""

    def __init__(
        self,
        source: str = "events",
        partitioning: str = "range",
        months_ahead: int = 3,
        hash_partitions: int = 8,
        keep_source_as: str = "events_legacy",
        create_tables: bool = True,
    ) -> None:
        self.source = source
        self.partitioning = partitioning
        self.months_ahead = months_ahead
        self.hash_partitions = hash_partitions
        self.keep_source_as = keep_source_as
        self.create_tables = create_tables

    @classmethod
    def import_legacy_events(
        cls,
        operations: Operations,
        source: str = "events",
        *,
        partitioning: str = "range",
        months_ahead: int = 3,
        hash_partitions: int = 8,
        keep_source_as: str = "events_legacy",
        create_tables: bool = True,
    ) -> Any:
        """``op.import_legacy_events("events")``: the origin layout's table becomes
        ``events_legacy`` and its rows live on in the partitioned ``events``."""
        return operations.invoke(
            cls(source, partitioning, months_ahead, hash_partitions, keep_source_as, create_tables)
        )


@Operations.register_operation("grant_cqrs_roles")
class GrantCqrsRolesOp(MigrateOperation):
    """Grant the service and runner roles exactly their privileges on the toolkit's
    tables (and their read models), optionally making ``migrator`` the owner and
    creating missing roles; see ``cqrs.roles`` and docs/security.md."""

    def __init__(
        self,
        service: str,
        runner: str,
        migrator: str | None = None,
        service_tables: Sequence[str] = (),
        runner_tables: Sequence[str] = (),
        create: bool = False,
        schema: str | None = None,
    ) -> None:
        self.service = service
        self.runner = runner
        self.migrator = migrator
        self.service_tables = tuple(service_tables)
        self.runner_tables = tuple(runner_tables)
        self.create = create
        self.schema = schema

    @classmethod
    def grant_cqrs_roles(
        cls,
        operations: Operations,
        *,
        service: str,
        runner: str,
        migrator: str | None = None,
        service_tables: Sequence[str] = (),
        runner_tables: Sequence[str] = (),
        create: bool = False,
        schema: str | None = None,
    ) -> Any:
        """``op.grant_cqrs_roles(service="orders_app", runner="orders_runner",
        runner_tables=["order_summary"])``; ``create=True`` makes missing roles
        (``NOLOGIN``), ``migrator=`` hands it the toolkit's tables. ``schema``
        defaults to the connection's current schema (``public`` offline). Idempotent:
        run it again in a later revision when read models are added."""
        return operations.invoke(
            cls(service, runner, migrator, service_tables, runner_tables, create, schema)
        )
