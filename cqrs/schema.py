"""Public: every toolkit table in one ``MetaData``, and a create-all path.

``metadata`` is what Alembic autogenerate should see next to your own::

    import cqrs.schema
    target_metadata = [Base.metadata, cqrs.schema.metadata]

``create_schema`` is the quick path for tests and scripts: it creates the
tables *and* the partitions the chosen layout needs. Production schemas come
from the Alembic branch (``cqrs/migrations``).
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, Table, text
from sqlalchemy.schema import CreateSequence

import cqrs.aggregates.tables
import cqrs.commands.tables
import cqrs.projections.tables
import cqrs.store.tables as store_tables
from cqrs.config import Settings
from cqrs.sqlnames import statement
from cqrs.store import guards, partitions
from cqrs.store.base import StoreBase

metadata: MetaData = StoreBase.metadata

__all__ = ["create_schema", "drop_schema", "events_table_for", "metadata"]

_ = (cqrs.aggregates.tables, cqrs.commands.tables, cqrs.projections.tables)


def events_table_for(settings: Settings, target: MetaData | None = None) -> Table:
    """A copy of ``events`` whose ``PARTITION BY`` clause follows ``settings``."""
    copy = store_tables.events.to_metadata(target or MetaData())
    clause = (
        store_tables.HASH_CLAUSE if settings.partitioning == "hash" else store_tables.RANGE_CLAUSE
    )
    copy.dialect_kwargs["postgresql_partition_by"] = clause
    return copy


def create_schema(connection: Connection, settings: Settings | None = None) -> None:
    """Create every toolkit table, the partitions of ``events`` and the append-only
    guards of ``cqrs.store.guards`` (idempotent).

    >>> create_schema(conn, Settings(partitioning="hash"))
    """
    settings = settings or Settings()
    connection.execute(CreateSequence(store_tables.global_position_seq, if_not_exists=True))
    others = [t for t in metadata.sorted_tables if t.name != "events"]
    metadata.create_all(connection, tables=others, checkfirst=True)
    exists = connection.execute(text("SELECT to_regclass('events') IS NOT NULL")).scalar_one()
    if not exists:
        events_table_for(settings).create(connection)
    guards.install(connection)
    partitions.ensure(connection, settings)


def drop_schema(connection: Connection) -> None:
    """Drop every toolkit table (partitions go with their parent) and the guard functions."""
    metadata.drop_all(connection, checkfirst=True)
    for function in (guards.EVENTS_FUNCTION, guards.STREAMS_FUNCTION):
        connection.execute(
            statement(connection, "DROP FUNCTION IF EXISTS {function}() CASCADE", function=function)
        )
