"""Public: a real PostgreSQL for tests, demos and benchmarks.

``database_url()`` answers ``CQRS_DATABASE_URL`` when it is set, otherwise it
starts (once per process) an embedded PostgreSQL 16 from the ``pgserver``
package in ``.cqrs/pgdata`` and answers its URL. ``isolated_schema`` gives one
caller a fresh schema with the toolkit's tables, made the way production makes
them (the ``cqrs`` Alembic branch), dropped afterwards.

    >>> url = database_url()                     # doctest: +SKIP
    >>> with isolated_schema(url) as engine:     # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from cqrs.config import Settings, normalise_url
from cqrs.errors import ConfigurationError
from cqrs.migrations.commands import upgrade

_embedded: Any = None


def embedded_url(data_dir: str | os.PathLike[str] | None = None) -> str:
    """Start the embedded PostgreSQL (once per process) and return its URL."""
    global _embedded
    if _embedded is None:
        try:
            with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset on CI
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError:  # pragma: no cover - dev extra missing
            raise ConfigurationError(
                "no CQRS_DATABASE_URL is set and the pgserver package is not installed; "
                "pip install 'sqlalchemy-cqrs[dev]' or point CQRS_DATABASE_URL at a PostgreSQL"
            ) from None
        path = Path(data_dir or os.environ.get("CQRS_PGDATA") or ".cqrs/pgdata").resolve()
        path.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset on CI
            warnings.simplefilter("ignore")
            _embedded = pgserver.get_server(  # type: ignore[attr-defined]
                path, cleanup_mode="stop"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return normalise_url(_embedded.get_uri())


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
