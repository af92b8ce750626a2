"""Public: the toolkit's Alembic plugin: the ``cqrs`` branch, partition operations,
and autogenerate hooks that keep ``alembic check`` clean.

Importing this package registers ``op.ensure_event_partitions``,
``op.create_event_partitions``, ``op.detach_event_partition``,
``op.archive_event_partition``, ``op.create_index_on_partitioned`` and
``op.import_legacy_events``. ``cqrs alembic init DIR`` / ``cqrs alembic wire``
(``cqrs.migrations.wiring``) set a service's Alembic environment up;
``cqrs.migrations.service`` shows the lines they write, and
``docs/guides/operations.md`` the whole flow.

    >>> import cqrs.migrations
    >>> cqrs.migrations.include_name("events_y2026m11", "table", {})
    False
"""

from __future__ import annotations

from cqrs.migrations import impl, render
from cqrs.migrations.compare import (
    autogenerate_options,
    compare_server_default,
    compare_type,
    include_name,
    include_object,
    register_xid8,
)
from cqrs.migrations.legacy import LegacyImportResult, import_legacy_events
from cqrs.migrations.ops import (
    ArchiveEventPartitionOp,
    CreateEventPartitionsOp,
    CreateIndexOnPartitionedOp,
    DetachEventPartitionOp,
    EnsureEventPartitionsOp,
    ImportLegacyEventsOp,
)
from cqrs.migrations.service import (
    VERSIONS,
    configure_options,
    migration_settings,
    route_revisions,
    target_metadata,
)
from cqrs.migrations.standalone import check, downgrade, upgrade

BRANCH = "cqrs"
"""The branch label of the toolkit's revisions (``alembic upgrade cqrs@head``)."""

_ = (impl, render)

__all__ = [
    "BRANCH",
    "VERSIONS",
    "ArchiveEventPartitionOp",
    "CreateEventPartitionsOp",
    "CreateIndexOnPartitionedOp",
    "DetachEventPartitionOp",
    "EnsureEventPartitionsOp",
    "ImportLegacyEventsOp",
    "LegacyImportResult",
    "autogenerate_options",
    "check",
    "compare_server_default",
    "compare_type",
    "configure_options",
    "downgrade",
    "import_legacy_events",
    "include_name",
    "include_object",
    "migration_settings",
    "register_xid8",
    "route_revisions",
    "target_metadata",
    "upgrade",
]
