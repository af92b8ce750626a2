"""The pytest plugin inside a service's own suite: a throwaway service package with its
conftest and tests, run by pytest in a subprocess against a database the service has
migrated (toolkit branch and its own head in ``public.alembic_version``), with
``CQRS_DATABASE_URL`` pointing at a "production" that must not be touched."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from cqrs.migrations import upgrade
from cqrs.testing.createdb import ensure_database

PRODUCTION = "postgresql://must-not-be-used@127.0.0.1:1/production"

MODELS = """
from decimal import Decimal

from sqlalchemy import Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs import Event, event
from cqrs.projections import E, Projection


@event("svc.order.placed")
class OrderPlaced(Event):
    order_id: str
    total: Decimal


class Base(DeclarativeBase):
    pass


class OrderSummary(Base):
    __tablename__ = "order_summary"
    order_id: Mapped[str] = mapped_column(String, primary_key=True)
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))


summary = Projection("order_summary", OrderSummary)
summary.on(OrderPlaced).upsert(order_id=E.order_id, total=E.total)
"""

CONFTEST = """
import pytest

import cqrs.schema
from myservice.models import Base


@pytest.fixture
def cqrs_metadata():
    return [Base.metadata, cqrs.schema.metadata]  # the toolkit's too, as env.py lists them
"""

TESTS = """
from decimal import Decimal

from sqlalchemy import select, text

from cqrs.projections import ProjectionRunner
from myservice.models import OrderPlaced, OrderSummary, summary


def test_the_projection_fills_the_read_model(cqrs_engine, cqrs_session, event_store):
    event_store.append(cqrs_session, "order-1", [OrderPlaced("order-1", Decimal("9.50"))])
    cqrs_session.commit()
    runner = ProjectionRunner(cqrs_engine, [summary])
    assert runner.run_until_caught_up() == 1
    runner.close()
    row = cqrs_session.execute(select(OrderSummary)).scalar_one()
    assert (row.order_id, row.total) == ("order-1", Decimal("9.50"))


def test_each_test_has_a_schema_of_its_own(cqrs_session):
    schema = cqrs_session.execute(text("SELECT current_schema()")).scalar_one()
    assert schema.startswith("t_")
    assert cqrs_session.execute(select(OrderSummary)).all() == []  # not public's rows
    assert cqrs_session.execute(text("SELECT count(*) FROM events")).scalar_one() == 0
"""


@pytest.fixture
def service_database(cqrs_database_url: str) -> Iterator[str]:
    """A database where the service's migrations ran in ``public``."""
    name = f"svc_{uuid.uuid4().hex[:8]}"
    url = make_url(cqrs_database_url).set(database=name).render_as_string(hide_password=False)
    ensure_database(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        upgrade(conn)  # the cqrs branch, as `alembic upgrade heads` runs it
        conn.execute(text("INSERT INTO alembic_version VALUES ('svc0001')"))  # the service's
        conn.execute(text("CREATE TABLE order_summary (order_id text PRIMARY KEY, total numeric)"))
        conn.execute(text("INSERT INTO order_summary VALUES ('from-public', 1)"))
        conn.commit()
    engine.dispose()
    yield url
    admin = create_engine(cqrs_database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _service(root: Path) -> None:
    (root / "myservice").mkdir()
    (root / "myservice" / "__init__.py").write_text("")
    (root / "myservice" / "models.py").write_text(textwrap.dedent(MODELS))
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (root / "tests" / "test_orders.py").write_text(textwrap.dedent(TESTS))


def _pytest(root: Path, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CQRS_", "PYTEST_"))}
    env |= {"CQRS_TEST_DATABASE_URL": database, "CQRS_DATABASE_URL": PRODUCTION}
    env["PYTHONPATH"] = str(root)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_service_suite_runs_on_its_migrated_database(
    tmp_path: Path, service_database: str
) -> None:
    _service(tmp_path)
    done = _pytest(tmp_path, service_database, "-q", "tests")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout

    engine = create_engine(service_database)
    with engine.connect() as conn:
        heads = set(conn.execute(text("SELECT version_num FROM public.alembic_version")).scalars())
        left = conn.execute(
            text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%'")
        ).scalar_one()
        public_rows = conn.execute(text("SELECT order_id FROM public.order_summary")).all()
    engine.dispose()
    assert "svc0001" in heads and len(heads) == 2  # the service's head and the toolkit's
    assert left == 0  # every test schema was dropped
    assert public_rows == [("from-public",)]


def test_pytest_fixtures_lists_the_fixtures_with_their_docs(
    tmp_path: Path, service_database: str
) -> None:
    _service(tmp_path)
    done = _pytest(tmp_path, service_database, "--fixtures", "tests")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    start = out.index("fixtures defined from cqrs.testing.pytest_plugin")
    section = out[start:].split("\n---", 1)[0]  # up to the next plugin's header
    for name in ("cqrs_database_url", "cqrs_settings", "cqrs_metadata", "cqrs_engine",
                 "cqrs_session", "event_store"):  # fmt: skip
        assert f"\n{name}" in section, name
    assert "no docstring available" not in section
    url_doc = section[section.index("cqrs_database_url") : section.index("cqrs_settings")]
    assert "CQRS_TEST_DATABASE_URL" in url_doc and "Never ``CQRS_DATABASE_URL``" in url_doc
