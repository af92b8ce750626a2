"""Internal: the Alembic environment that ``cqrs.migrations.standalone`` runs the
toolkit's ``cqrs`` branch through, for a program, a test or a demo that wants the
toolkit's tables without an ``alembic.ini`` of its own.

The file is named ``env.py`` because Alembic requires it: ``ScriptDirectory``
runs ``<script_location>/env.py``, and ``standalone`` points ``script_location``
at this package (whose ``versions/`` is the branch). A service's own Alembic
environment never runs this file; it uses ``cqrs.migrations.service``.
"""

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
