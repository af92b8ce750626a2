"""The toolkit's tables: every table in ``cqrs.schema.metadata`` (streams, events
partitioned, snapshots, processed_commands, checkpoints, dead_letters, ...), the
``events_global_position_seq`` sequence and the first partitions.

Until the first release this revision creates what ``cqrs.schema.metadata``
declares, so the toolkit's tables and this branch cannot drift apart while they
are being designed; at the release it is frozen (written out table by table)
and every later change to a toolkit table gets a revision of its own here.

The ``events`` layout follows ``cqrs.migrations.migration_settings()``
(``-x cqrs_partitioning=hash``, ``config.attributes``, the ini file, or the
environment; monthly range by default). When the database already holds an
unpartitioned ``events`` table (the origin document's layout), its rows are
imported through the shadow-and-swap recipe and the old table is kept as
``events_legacy``.

Revision ID: cqrs_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.operations.ops import CreateIndexOp, CreateTableOp

import cqrs.migrations  # registers op.ensure_event_partitions and friends
import cqrs.schema
from cqrs.store.base import NAMING_CONVENTION
from cqrs.store.tables import global_position_seq

revision = "cqrs_0001"
down_revision: str | None = None
branch_labels = ("cqrs",)
depends_on: str | None = None

EVENTS = "events"


def _legacy_events_table() -> bool:
    if op.get_context().as_sql:
        return False
    kind = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT relkind::text FROM pg_class WHERE relname = 'events' "
                "AND relnamespace = current_schema()::regnamespace"
            )
        )
        .scalar_one_or_none()
    )
    return kind == "r"


def _create(table: sa.Table) -> None:
    op.invoke(CreateTableOp.from_table(table))
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        op.invoke(CreateIndexOp.from_index(index))


def upgrade() -> None:
    settings = cqrs.migrations.migration_settings()
    target = sa.MetaData(naming_convention=NAMING_CONVENTION)
    op.execute(sa.schema.CreateSequence(global_position_seq))
    for table in cqrs.schema.metadata.sorted_tables:
        if table.name != EVENTS:
            _create(table.to_metadata(target))
    if _legacy_events_table():
        op.import_legacy_events(  # type: ignore[attr-defined]
            EVENTS,
            partitioning=settings.partitioning,
            months_ahead=settings.months_ahead,
            hash_partitions=settings.hash_partitions,
        )
        return
    _create(cqrs.schema.events_table_for(settings, target))
    op.ensure_event_partitions(  # type: ignore[attr-defined]
        months_ahead=settings.months_ahead, hash_partitions=settings.hash_partitions
    )


def downgrade() -> None:
    for table in reversed(cqrs.schema.metadata.sorted_tables):
        op.drop_table(table.name)  # the partitions of events go with it
    op.execute(sa.schema.DropSequence(global_position_seq))
