"""Internal: shared fixtures of the toolkit's own tests (kept tiny on purpose)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from cqrs.config import Settings
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
        conn.execute(text("DELETE FROM events"))
        conn.execute(text("DELETE FROM streams"))
    return layout_schema
