"""The demo across services: the shop's order events reach the analytics service once each.

A small shop burst, then ``examples.analytics.demo.run`` on a private
nats-server (the demo's stream name is fixed, so this test never shares a
broker with a ``make demo`` running elsewhere).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, select, text

from cqrs.testing import NatsServer
from examples.analytics import demo as analytics
from examples.analytics.service import order_facts
from examples.shop import demo


@pytest.fixture
def shop(cqrs_database_url: str) -> Iterator[Engine]:
    schema = f"shop_x_{uuid.uuid4().hex[:10]}"
    engine = demo.prepare(cqrs_database_url, schema, workers=3)
    try:
        yield engine
    finally:
        engine.dispose()
        _drop(cqrs_database_url, schema)


def _drop(url: str, schema: str) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def test_order_events_reach_the_second_service_once_each(
    shop: Engine, cqrs_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = demo.run_on(shop, orders=30, workers=3, seed=7, out=io.StringIO())
    assert result.consistent
    schema = f"analytics_{uuid.uuid4().hex[:10]}"
    out = io.StringIO()
    with NatsServer() as server:
        monkeypatch.setenv("CQRS_NATS_URL", server.url)
        services = analytics.run(shop, cqrs_database_url, schema=schema, out=out)
        # the whole pipeline again (fresh stream, fresh analytics schema): the same answer
        again = analytics.run(shop, cqrs_database_url, schema=schema, out=out)
    report = out.getvalue()
    assert services.consistent and again.consistent, report
    assert services.selected == services.received > 30, report
    assert (services.duplicates, services.out_of_order, services.unselected) == (0, 0, 0)
    assert "-> OK" in report
    engine = create_engine(cqrs_database_url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        with engine.connect() as conn:
            placed = conn.execute(select(order_facts.c.order_id)).all()
        assert len(placed) == result.orders_placed
    finally:
        engine.dispose()
        _drop(cqrs_database_url, schema)
