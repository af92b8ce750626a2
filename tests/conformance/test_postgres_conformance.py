"""Internal: the PostgreSQL ``EventStore`` passes the conformance suite in both layouts,
through a ``Session`` (range layout) and through a ``Connection`` (hash layout).

One schema per layout for the module, emptied before each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cqrs.config import Settings
from cqrs.testing import EventStoreConformance, isolated_schema
from cqrs.testing.conformance import PostgresHarness


@pytest.fixture(scope="module", params=[("range", "session"), ("hash", "connection")], ids=str)
def module_harness(
    request: pytest.FixtureRequest, cqrs_database_url: str
) -> Iterator[PostgresHarness]:
    layout, executor = request.param
    settings = Settings(partitioning=layout, hash_partitions=4)
    with isolated_schema(cqrs_database_url, settings) as engine:
        yield PostgresHarness(engine, settings, executor=executor)


class TestPostgresEventStore(EventStoreConformance):
    @pytest.fixture
    def store_harness(self, module_harness: PostgresHarness) -> PostgresHarness:
        module_harness.reset()
        return module_harness
