"""Public: a real PostgreSQL for tests, demos and benchmarks.

``database_url()`` (demos, benchmarks) answers ``CQRS_DATABASE_URL`` when it is
set; ``database_url_for_tests()`` (the pytest fixtures) answers
``CQRS_TEST_DATABASE_URL``, never the production variable. Without their
variable both start (or reuse) an embedded PostgreSQL 16 from the ``pgserver``
package in ``.cqrs/pgdata`` (``cqrs.embedded``) and answer its URL.
``isolated_schema`` gives one caller a fresh schema with the toolkit's tables,
made the way production makes them (the ``cqrs`` Alembic branch), plus any
metadata of the caller's, dropped afterwards.

    >>> url = database_url_for_tests()
    >>> with isolated_schema(url, metadata=[Base.metadata]) as engine:
    ...     with engine.connect() as conn:
    ...         conn.execute(text("SELECT count(*) FROM events")).scalar_one()
    0
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, MetaData, NullPool, create_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from cqrs import embedded
from cqrs.config import Settings, normalise_url
from cqrs.errors import InvalidInput
from cqrs.migrations.standalone import upgrade

_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}")
"""What ``isolated_schema`` takes as a prefix: a lower-case SQL name of up to 40 characters."""


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


def database_url_for_tests(environ: Mapping[str, str] | None = None) -> str:
    """``CQRS_TEST_DATABASE_URL`` if set, else the embedded server's URL.

    Tests create and drop schemas in that database; ``CQRS_DATABASE_URL``, which
    names the service's real database, is deliberately not read.
    """
    env = os.environ if environ is None else environ
    url = env.get("CQRS_TEST_DATABASE_URL")
    return normalise_url(url) if url else embedded_url()


def schema_engine(url: str, schema: str, *, public: bool = True, **kwargs: Any) -> Engine:
    """An engine whose connections use ``schema`` first on their search path, then
    ``public`` (for extensions and shared tables) unless ``public=False``."""
    path = f"{schema},public" if public else schema
    return create_engine(url, connect_args={"options": f"-csearch_path={path}"}, **kwargs)


@contextmanager
def isolated_schema(
    url: str,
    settings: Settings | None = None,
    *,
    metadata: Sequence[MetaData] = (),
    prefix: str = "t",
    **engine_kwargs: Any,
) -> Iterator[Engine]:
    """A fresh schema holding the toolkit's tables (and ``metadata``'s), as an engine;
    dropped on exit.

    The toolkit's tables come from its Alembic branch, run with only the new
    schema on the search path, so an ``alembic_version`` that the service's own
    migrations left in ``public`` is neither read nor touched. Then each
    ``metadata`` is created with ``create_all`` (tables that exist are skipped,
    so passing ``cqrs.schema.metadata`` along with yours is harmless).

    The schema is named ``{prefix}_`` and twelve random hex digits; a ``prefix``
    that is not a lower-case SQL name of up to 40 characters (letters, digits,
    ``_``) raises :class:`~cqrs.errors.InvalidInput` before anything is made.
    """
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise InvalidInput(
            f"isolated_schema prefix {prefix!r} is not a lower-case SQL name; use up to 40 "
            "letters a-z, digits and underscores, starting with a letter or underscore"
        )
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(CreateSchema(schema))
        engine = schema_engine(url, schema, **engine_kwargs)
        try:
            migrator = schema_engine(url, schema, public=False, poolclass=NullPool)
            with migrator.connect() as conn:
                upgrade(conn, settings)
                for tables in metadata:
                    tables.create_all(conn)
                conn.commit()
            migrator.dispose()
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(DropSchema(schema, cascade=True))
    finally:
        admin.dispose()
