"""Internal: run the repo's Alembic environment against a fresh, empty schema."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, text

from cqrs.testing.database import schema_engine

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def empty_schema(url: str) -> Iterator[Engine]:
    """An engine whose search path starts with a new empty schema, dropped afterwards."""
    schema = f"alembic_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = schema_engine(url, schema)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def alembic_config(
    connection: Connection, *x: str, extra_versions: Path | None = None, **attributes: object
) -> Config:
    """The repo's ``alembic.ini`` bound to ``connection``, with ``-x`` arguments."""
    config = Config(str(ROOT / "alembic.ini"), cmd_opts=argparse.Namespace(x=list(x)))
    if extra_versions is not None:
        locations = config.get_main_option("version_locations") or ""
        config.set_main_option("version_locations", f"{locations} {extra_versions}")
    config.attributes["connection"] = connection
    config.attributes.update(attributes)
    return config


def relations(connection: Connection) -> dict[str, str]:
    """Tables of the current schema and their relkind ('r' plain, 'p' partitioned)."""
    rows = connection.execute(
        text(
            "SELECT relname, relkind::text FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p')"
        )
    )
    return {name: kind for name, kind in rows}
