"""The relay's delivery contract under kills, broker restarts and shards.

Relays run as processes (``relay_worker.py``) that are SIGKILLed mid-stream
and restarted; a broker restart uses this test's OWN nats-server (never the
shared one on 4222). The consumer then holds every selected event exactly
once, in per-stream order, and nothing unselected.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from relay_domain import (
    append_orders,
    assert_exactly_once_in_order,
    build_inbox,
    build_relay,
    receipts_md,
    selected_events,
    store,
)
from sqlalchemy import Engine, text
from test_relay import _delete_stream, _run, stream_messages

from cqrs.projections import projection_status
from cqrs.relay import RelayRunner, ensure_stream
from cqrs.testing import NatsServer

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


@pytest.fixture
def engine(cqrs_engine: Engine) -> Engine:
    with cqrs_engine.begin() as conn:
        receipts_md.create_all(conn)
    return cqrs_engine


@pytest.fixture
def names(cqrs_nats_url: str) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:8]
    prefix, stream = f"rk{tag}", f"RK{tag}"
    ensure_stream(cqrs_nats_url, stream, [f"{prefix}.>"], duplicate_window=600)
    yield prefix, stream
    _run(_delete_stream(cqrs_nats_url, stream))


def _schema_url(engine: Engine) -> str:
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    url = engine.url.render_as_string(hide_password=False)
    sep = "&" if "?" in url else "?"
    return url + sep + "options=" + quote(f"-csearch_path={schema},public")


def _worker(engine: Engine, nats_url: str, prefix: str, stream: str, shards: int, owner: str
            ) -> subprocess.Popen[bytes]:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    command = [sys.executable, str(HERE / "relay_worker.py"), _schema_url(engine), nats_url,
               prefix, stream, str(shards), owner]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=HERE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _caught_up(engine: Engine, shards: int = 1) -> bool:
    rows = [s for s in projection_status(engine) if s.projection == "rl_out"]
    return len(rows) == shards and all(s.behind == 0 for s in rows)


def _consume(engine: Engine, url: str, stream: str, prefix: str) -> None:
    inbox = build_inbox(engine, url, stream, f"{prefix}.>")
    try:
        inbox.run_until_idle(idle=1.0)
    finally:
        inbox.close()


def test_sigkill_the_relay_mid_stream_many_times(
    engine: Engine, cqrs_nats_url: str, names: tuple[str, str]
) -> None:
    prefix, stream = names
    rng = random.Random(15)
    kills = 0
    for round_ in range(8):
        append_orders(engine, streams=6, rounds=3, start=round_ * 3)
        proc = _worker(engine, cqrs_nats_url, prefix, stream, 1, f"victim-{round_}")
        try:
            # kill it once it has published something of this round, mid-stream
            seen = 36 * round_
            _wait(lambda: stream_messages(cqrs_nats_url, stream) > seen, "a publish")  # noqa: B023
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
    proc = _worker(engine, cqrs_nats_url, prefix, stream, 1, "last")
    try:
        append_orders(engine, streams=6, rounds=1, start=24)  # published by the last one
        _wait(lambda: _caught_up(engine), "the last relay to catch up")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    assert kills == 8
    selected = selected_events(engine)
    assert len(selected) == 25 * 6 * 2
    assert stream_messages(cqrs_nats_url, stream) == len(selected)  # repeats were dropped
    _consume(engine, cqrs_nats_url, stream, prefix)
    assert_exactly_once_in_order(engine)


def test_two_relays_on_shards(engine: Engine, cqrs_nats_url: str, names: tuple[str, str]) -> None:
    prefix, stream = names
    procs = [_worker(engine, cqrs_nats_url, prefix, stream, 4, f"relay-{n}") for n in (1, 2)]
    try:
        for r in range(6):
            append_orders(engine, streams=8, rounds=1, start=r)
        _wait(lambda: _caught_up(engine, shards=4), "both relays to catch up")

        def owners() -> set[str]:
            return {s.owner or "" for s in projection_status(engine) if s.projection == "rl_out"}

        _wait(lambda: owners() == {"relay-1", "relay-2"}, "the shards to be shared")
        procs[0].send_signal(signal.SIGKILL)  # the other one takes its shards over
        procs[0].wait(timeout=30)
        append_orders(engine, streams=8, rounds=2, start=6)
        _wait(lambda: _caught_up(engine, shards=4), "the survivor to catch up")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    assert stream_messages(cqrs_nats_url, stream) == len(selected_events(engine)) == 8 * 8 * 2
    _consume(engine, cqrs_nats_url, stream, prefix)
    assert_exactly_once_in_order(engine)


def test_nats_server_restarts_during_a_run(engine: Engine) -> None:
    with NatsServer() as server:  # our own broker: the shared one is never stopped
        ensure_stream(server.url, "RESTART", ["rs.>"], duplicate_window=600)
        relay = build_relay("rs", "RESTART", batch_size=10)
        runner = RelayRunner(engine, [relay], nats_url=server.url, store=store(),
                             poll_interval=0.02, ack_timeout=3.0, max_backoff=0.3)  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
        thread.start()
        try:
            for r in range(5):
                append_orders(engine, streams=5, rounds=2, start=r * 2)
                _wait(lambda: stream_messages(server.url, "RESTART") > 0, "a publish")
                server.restart()  # mid-run: the relay sees a dead connection
            append_orders(engine, streams=5, rounds=2, start=10)
            _wait(lambda: _caught_up(engine), "the relay to catch up after the restarts")
        finally:
            stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive()
        assert stream_messages(server.url, "RESTART") == len(selected_events(engine)) == 120
        _consume(engine, server.url, "RESTART", "rs")
    assert_exactly_once_in_order(engine)
