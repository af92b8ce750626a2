"""Internal: the Alembic environment of the toolkit's own branch, used by
``cqrs.migrations.commands`` (``upgrade(connection)``) when a program, a test or
a demo wants the toolkit's tables without an ``alembic.ini`` of its own."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData

import cqrs.migrations
import cqrs.schema

config = context.config
connection: Connection = config.attributes["connection"]
models: list[MetaData] = list(config.attributes.get("cqrs_models", ()))

context.configure(
    connection=connection,
    target_metadata=[cqrs.schema.metadata, *models],
    transaction_per_migration=True,
    **cqrs.migrations.autogenerate_options(connection),
)
with context.begin_transaction():
    context.run_migrations()
