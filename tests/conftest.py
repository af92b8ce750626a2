"""Internal: shared fixtures of the toolkit's own tests (kept tiny on purpose)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from cqrs.config import Settings
from cqrs.store.guards import allow_rewrite
from cqrs.testing import isolated_schema


@pytest.fixture(params=["range", "hash"])
def both_layouts(request: pytest.FixtureRequest) -> Settings:
    """Settings for each ``events`` layout; a module opts in by overriding ``cqrs_settings``."""
    return Settings(partitioning=request.param, hash_partitions=4)


@pytest.fixture(scope="module", params=["range", "hash"])
def layout_schema(request: pytest.FixtureRequest, cqrs_database_url: str) -> Iterator[Engine]:
    """One schema per layout for a whole module (cheaper than ``cqrs_engine``)."""
    settings = Settings(partitioning=request.param, hash_partitions=4)
    with isolated_schema(cqrs_database_url, settings) as engine:
        yield engine


@pytest.fixture
def log_engine(layout_schema: Engine) -> Engine:
    """``layout_schema`` with an empty event log."""
    with layout_schema.begin() as conn:
        allow_rewrite(conn)  # the log is append-only (cqrs.store.guards)
        conn.execute(text("DELETE FROM events"))
        conn.execute(text("DELETE FROM streams"))
    return layout_schema


class OtherDatabase:
    """A second database on the test server, and transactions held open in it."""

    def __init__(self, url: str) -> None:
        self.name = f"cqrs_other_{uuid.uuid4().hex[:10]}"
        self.url = make_url(url).set(database=self.name).render_as_string(hide_password=False)
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.engine = create_engine(self.url, poolclass=NullPool)

    @contextmanager
    def open_transaction(self) -> Iterator[tuple[int, int]]:
        """A writing transaction held open there: ``(pid, transaction id)``; rolled back after."""
        with self.engine.connect() as conn:
            conn.execute(text("CREATE TEMP TABLE held (n int)"))
            conn.execute(text("INSERT INTO held VALUES (1)"))
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            xid = int(conn.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())
            try:
                yield pid, xid
            finally:
                conn.rollback()

    def close(self) -> None:
        self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def other_database(cqrs_database_url: str) -> Iterator[OtherDatabase]:
    """Another database on the same server (another service's, say)."""
    other = OtherDatabase(cqrs_database_url)
    try:
        yield other
    finally:
        other.close()


@pytest.fixture(scope="session")
def other_database_on() -> type[OtherDatabase]:
    """``OtherDatabase`` itself, for a test on a server of its own: ``other_database_on(url)``."""
    return OtherDatabase
