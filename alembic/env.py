"""The example service's Alembic environment: the toolkit's ``cqrs`` branch plus the
service's own read-model tables, compared partition-aware.

Tests and tools pass an open connection in ``config.attributes["connection"]``
(the standard Alembic recipe); otherwise the URL comes from ``sqlalchemy.url``
or ``CQRS_DATABASE_URL``.
"""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy import Connection, create_engine, pool

import cqrs.migrations
from cqrs.config import Settings
from cqrs.errors import ConfigurationError

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = cqrs.migrations.target_metadata(config)


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    if not url:
        raise ConfigurationError("set sqlalchemy.url in alembic.ini or CQRS_DATABASE_URL")
    return url


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=True,
        **cqrs.migrations.autogenerate_options(connection),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        **cqrs.migrations.autogenerate_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_with(connection)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
