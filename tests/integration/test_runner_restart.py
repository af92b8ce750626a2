"""The runner survives a database restart (its own throwaway embedded PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pgserver
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from test_projection_models import (
    HOOKS,
    OrderPlaced,
    append,
    build_summary,
    create_read_models,
    fresh_replay,
    store,
    summary_rows,
)

from cqrs.config import normalise_url
from cqrs.projections.runner import ProjectionRunner
from cqrs.schema import create_schema


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OperationalError:
            pass  # the database is restarting
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[object, Path]]:
    data = tmp_path / "pg"
    srv = pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield srv, data
    finally:
        srv.cleanup()


def test_runner_reconnects_after_a_database_restart(server: tuple[object, Path]) -> None:
    srv, data = server
    HOOKS["fail"] = set()
    url = normalise_url(srv.get_uri())  # type: ignore[attr-defined]
    # The server is thrown away after the test: the toolkit's tables go in public.
    engine = create_engine(url, pool_pre_ping=True)
    with engine.begin() as conn:
        create_schema(conn)
    try:
        create_read_models(engine)
        runner = ProjectionRunner(engine, [build_summary()], store=store(), poll_interval=0.05)
        thread = threading.Thread(target=runner.run_forever)
        thread.start()
        try:
            for i in range(5):
                append(engine, f"order-{i}", OrderPlaced(f"order-{i}", "c", Decimal(i)))
            _wait(lambda: len(summary_rows(engine)) == 5, "the first events")
            user = srv.system_user  # type: ignore[attr-defined]
            pgserver.pg_ctl(["restart", "-m", "fast", "-w"], pgdata=data, user=user)

            def append_more() -> bool:
                for i in range(5, 10):
                    append(engine, f"order-{i}", OrderPlaced(f"order-{i}", "c", Decimal(i)))
                return True

            _wait(append_more, "the database to come back")
            _wait(lambda: len(summary_rows(engine)) == 10, "the runner to reconnect")
        finally:
            runner.stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive()
        assert runner._reconnects >= 1
        assert summary_rows(engine) == fresh_replay(engine)
    finally:
        engine.dispose()
