"""Public: bring a schema up with Alembic: the toolkit's ``cqrs`` branch plus the shop's.

Uses the repository's ``alembic.ini`` and ``alembic/`` environment, adds the
shop's version location (``examples/shop/migrations``, branch ``shop``) and
compares against ``examples.shop.models:Base``; the same as running::

    alembic -x models=examples.shop.models:Base upgrade heads

with that extra version location. ``fresh_schema`` drops and recreates a
schema so a demo can run twice in a row::

    engine = fresh_schema(database_url(), "shop")
    with engine.connect() as conn:
        upgrade(conn)
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, text

from cqrs.testing import schema_engine

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = str(Path(__file__).resolve().with_name("migrations"))
MODELS = "examples.shop.models:Base"
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def alembic_config(connection: Connection, *x: str) -> Config:
    """The repo's Alembic config bound to ``connection``, with the shop's branch and models."""
    config = Config(
        str(ROOT / "alembic.ini"), cmd_opts=argparse.Namespace(x=[f"models={MODELS}", *x])
    )
    locations = config.get_main_option("version_locations") or ""
    config.set_main_option("version_locations", f"{locations} {VERSIONS}")
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, *x: str) -> None:
    """``alembic upgrade heads`` on ``connection`` (committed when it returns)."""
    command.upgrade(alembic_config(connection, *x), "heads")
    connection.commit()


def check(connection: Connection) -> None:
    """``alembic check``: raises when the models and the migrated schema differ."""
    command.check(alembic_config(connection))


def fresh_schema(url: str, schema: str, **engine_kwargs: Any) -> Engine:
    """Drop ``schema`` if it exists, create it empty, answer an engine that works in it."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"schema name {schema!r} must be a lower-case SQL identifier")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()
    return schema_engine(url, schema, **engine_kwargs)
