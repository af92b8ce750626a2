"""Public: a real PostgreSQL for tests, demos and benchmarks.

``database_url()`` answers ``CQRS_DATABASE_URL`` when it is set, otherwise it
starts (or reuses) an embedded PostgreSQL 16 from the ``pgserver`` package
in ``.cqrs/pgdata`` (``cqrs.embedded``) and answers its URL. ``isolated_schema`` gives one
caller a fresh schema with the toolkit's tables, made the way production makes
them (the ``cqrs`` Alembic branch), dropped afterwards.

    >>> url = database_url()                     # doctest: +SKIP
    >>> with isolated_schema(url) as engine:     # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text

from cqrs import embedded
from cqrs.config import Settings, normalise_url
from cqrs.migrations.commands import upgrade


def embedded_url(data_dir: str | os.PathLike[str] | None = None) -> str:
    """Start (or reuse) the embedded PostgreSQL and return its URL (``cqrs.embedded.start``).

    The data lives in ``data_dir``, else ``$CQRS_PGDATA``, else ``.cqrs/pgdata``.
    """
    return embedded.start(data_dir or os.environ.get("CQRS_PGDATA") or ".cqrs/pgdata")


def database_url(environ: dict[str, str] | None = None) -> str:
    """``CQRS_DATABASE_URL`` if set, else the embedded server's URL."""
    env = os.environ if environ is None else environ
    url = env.get("CQRS_DATABASE_URL")
    return normalise_url(url) if url else embedded_url()


def schema_engine(url: str, schema: str, **kwargs: Any) -> Engine:
    """An engine whose connections use ``schema`` first on their search path."""
    connect_args = {"options": f"-csearch_path={schema},public"}
    return create_engine(url, connect_args=connect_args, **kwargs)


@contextmanager
def isolated_schema(
    url: str, settings: Settings | None = None, *, prefix: str = "t", **engine_kwargs: Any
) -> Iterator[Engine]:
    """A fresh schema holding the toolkit's tables, as an engine; dropped on exit."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = schema_engine(url, schema, **engine_kwargs)
        try:
            with engine.connect() as conn:
                upgrade(conn, settings)
                conn.commit()
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
