"""The runner under crashes: kill -9 mid-batch, a killed connection, poison events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, text
from test_projection_models import (
    HOOKS,
    ItemAdded,
    Marker,
    OrderPlaced,
    append,
    build_summary,
    create_read_models,
    fresh_replay,
    store,
    summary_rows,
)

from cqrs.errors import ProjectionError
from cqrs.projections.dead_letters import (
    list_dead_letters,
    retry_dead_letters,
    skip_dead_letters,
)
from cqrs.projections.runner import ProjectionRunner
from cqrs.projections.status import projection_status

HERE = Path(__file__).parent


@pytest.fixture
def engine(cqrs_engine: Engine) -> Iterator[Engine]:
    create_read_models(cqrs_engine)
    HOOKS["fail"] = set()
    HOOKS["pids"] = []
    HOOKS.pop("gate", None)
    yield cqrs_engine
    HOOKS.pop("gate", None)
    HOOKS["fail"] = set()


def _runner(engine: Engine, **kwargs: object) -> ProjectionRunner:
    return ProjectionRunner(engine, [build_summary()], store=store(), **kwargs)  # type: ignore[arg-type]


def _seed(engine: Engine, streams: int = 20) -> None:
    for i in range(streams):
        append(engine, f"order-{i}", OrderPlaced(f"order-{i}", "c", Decimal(i)))
    for i in range(streams):
        append(engine, f"order-{i}", ItemAdded(f"order-{i}", Decimal(1)))


def _schema_url(engine: Engine) -> str:
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    url = engine.url.render_as_string(hide_password=False)
    sep = "&" if "?" in url else "?"
    return url + sep + "options=" + quote(f"-csearch_path={schema},public")


def _wait(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _backend_gone(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return not conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one()


def _start_cli_runner(engine: Engine, marker: Path, *, sleep: int) -> subprocess.Popen[bytes]:
    """``cqrs projections run`` in a subprocess; it writes its backend pid to ``marker``
    and sleeps ``sleep`` seconds on the marker event."""
    env = {
        **os.environ,
        "CQRS_DATABASE_URL": _schema_url(engine),
        "PJ_MARKER_FILE": str(marker),
        "PJ_SLEEP": str(sleep),
        "PYTHONPATH": str(HERE),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "cqrs.cli.main", "projections", "run",
         "--module", "test_projection_models:projections"],
        env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_kill_9_mid_batch_then_restart_equals_fresh_replay(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    # One transaction: more events, the marker the subprocess sleeps on, more events.
    append(engine, "order-3", ItemAdded("order-3", Decimal(5)), Marker("sleep", "order-3"),
           ItemAdded("order-3", Decimal(7)))  # fmt: skip
    for i in range(5):
        append(engine, f"order-{i}", ItemAdded(f"order-{i}", Decimal(2)))
    marker = tmp_path / "pid"
    proc = _start_cli_runner(engine, marker, sleep=60)
    try:
        _wait(lambda: marker.exists() and marker.read_text(), "the runner to reach the marker")
        pid = int(marker.read_text())
        # Mid-batch: the rows before the marker were written but not committed.
        assert summary_rows(engine) == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _wait(lambda: _backend_gone(engine, pid), "the dead runner's backend to go")
    assert summary_rows(engine) == []
    os.environ["PJ_SLEEP"] = "0"
    try:
        _runner(engine, listen=False).run_until_caught_up()
    finally:
        os.environ.pop("PJ_SLEEP", None)
    rows = summary_rows(engine)
    assert rows == fresh_replay(engine)
    by_id = {r[0]: r for r in rows}
    assert by_id["order-3"][5] == 5  # applied counter: placed + 4 item events, each once
    assert len(rows) == 20


def test_sigterm_finishes_the_batch_in_flight(engine: Engine, tmp_path: Path) -> None:
    _seed(engine, 5)
    append(engine, "order-1", Marker("sleep", "order-1"), ItemAdded("order-1", Decimal(1)))
    marker = tmp_path / "pid"
    proc = _start_cli_runner(engine, marker, sleep=1)
    try:
        _wait(lambda: marker.exists() and marker.read_text(), "the runner to reach the marker")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The batch in flight committed before the process left.
    assert summary_rows(engine) == fresh_replay(engine)
    assert len(summary_rows(engine)) == 5


def test_terminated_connection_mid_batch_recovers(engine: Engine) -> None:
    _seed(engine, 10)
    append(engine, "order-2", Marker("sleep", "order-2"), ItemAdded("order-2", Decimal(3)))
    gate = threading.Event()
    HOOKS["gate"] = gate
    runner = _runner(engine, poll_interval=0.05)
    thread = threading.Thread(target=runner.run_forever)
    thread.start()
    try:
        _wait(lambda: HOOKS["pids"], "the runner to reach the marker")
        pid = HOOKS["pids"][0]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        gate.set()
        _wait(lambda: len(summary_rows(engine)) == 10, "the runner to recover")
        _wait(lambda: summary_rows(engine) == fresh_replay(engine), "the read model to settle")
    finally:
        runner.stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert runner._reconnects >= 1
    assert summary_rows(engine) == fresh_replay(engine)


def test_poison_event_is_parked_and_its_stream_resumes_after_retry(engine: Engine) -> None:
    HOOKS["fail"] = {"order-7"}
    _seed(engine, 10)
    append(engine, "order-7", Marker("fail", "order-7"))
    append(engine, "order-7", ItemAdded("order-7", Decimal(1)))  # later: parked too
    append(engine, "order-8", ItemAdded("order-8", Decimal(1)))  # other stream: goes on
    runner = _runner(engine, listen=False)
    runner.run_until_caught_up()
    letters = list_dead_letters(engine, "order_summary")
    assert [(d.stream_id, d.version) for d in letters] == [("order-7", 3), ("order-7", 4)]
    assert "poison event for order-7" in letters[0].error
    by_id = {r[0]: r for r in summary_rows(engine)}
    assert by_id["order-8"][4] == 2  # items: both ItemAdded applied
    assert by_id["order-7"][4] == 1  # the later ItemAdded is parked
    # Other streams never stop; the parked stream stays parked.
    append(engine, "order-9", ItemAdded("order-9", Decimal(1)))
    append(engine, "order-7", ItemAdded("order-7", Decimal(1)))
    runner.run_until_caught_up()
    by_id = {r[0]: r for r in summary_rows(engine)}
    assert by_id["order-9"][4] == 2 and by_id["order-7"][4] == 1
    assert len(list_dead_letters(engine, "order_summary")) == 3
    status = {s.shard: s for s in projection_status(engine)}
    assert status[0].parked == 3
    # Still broken: retry fails, nothing is applied or dropped.
    with pytest.raises(ProjectionError, match="failed again"):
        retry_dead_letters(engine, build_summary(), stream_id="order-7")
    assert len(list_dead_letters(engine, "order_summary")) == 3
    HOOKS["fail"] = set()  # the handler is fixed
    assert retry_dead_letters(engine, build_summary(), stream_id="order-7") == 3
    assert list_dead_letters(engine, "order_summary") == []
    append(engine, "order-7", ItemAdded("order-7", Decimal(1)))
    runner.run_until_caught_up()
    assert summary_rows(engine) == fresh_replay(engine)
    assert {r[0]: r for r in summary_rows(engine)}["order-7"][4] == 4


def test_skip_drops_entries_and_unknown_ids_change_nothing(engine: Engine) -> None:
    HOOKS["fail"] = {"order-1"}
    _seed(engine, 3)
    append(engine, "order-1", Marker("fail", "order-1"), ItemAdded("order-1", Decimal(1)))
    _runner(engine, listen=False).run_until_caught_up()
    letters = list_dead_letters(engine, "order_summary")
    assert len(letters) == 2
    with pytest.raises(ProjectionError, match="no dead letters"):
        skip_dead_letters(engine, "order_summary", [letters[0].id, 999999])
    assert len(list_dead_letters(engine, "order_summary")) == 2
    assert skip_dead_letters(engine, "order_summary", [letters[0].id]) == 1
    assert retry_dead_letters(engine, build_summary(), ids=[letters[1].id]) == 1
    assert {r[0]: r for r in summary_rows(engine)}["order-1"][4] == 2


def test_failures_are_retried_before_parking(engine: Engine) -> None:
    calls = {"n": 0}
    projection = build_summary(retries=2)

    @projection.on(ItemAdded)
    def _flaky(e: object, ctx: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient glitch")

    _seed(engine, 2)
    runner = ProjectionRunner(engine, [projection], store=store(), listen=False)
    runner.run_until_caught_up()
    assert list_dead_letters(engine) == []
    assert len(summary_rows(engine)) == 2


def _leases(engine: Engine) -> dict[str, set[int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT owner, shard FROM projection_leases WHERE projection = 'order_summary' "
                "AND expires_at > clock_timestamp()"
            )
        ).all()
    held: dict[str, set[int]] = {}
    for owner, shard in rows:
        held.setdefault(owner, set()).add(shard)
    return held


def test_kill_9_of_a_shard_holder_hands_its_shards_over(engine: Engine) -> None:
    # Two runner processes share 4 shards; one is killed while writers go on.
    # The survivor takes its shards once the lease expires, and the read model
    # equals a fresh replay: nothing lost, nothing applied twice.
    url = _schema_url(engine)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    command = [sys.executable, str(HERE / "sharded_runner.py"), url]
    procs = {
        owner: subprocess.Popen(
            [*command, owner], env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for owner in ("victim", "survivor")
    }
    try:
        for i in range(30):
            append(engine, f"order-{i}", OrderPlaced(f"order-{i}", "c", Decimal(i)))
        _wait(lambda: {len(s) for s in _leases(engine).values()} == {2}, "two shards each")
        for i in range(30):
            append(engine, f"order-{i}", ItemAdded(f"order-{i}", Decimal(1)))
        procs["victim"].send_signal(signal.SIGKILL)
        procs["victim"].wait(timeout=30)
        for i in range(30, 45):
            append(engine, f"order-{i}", OrderPlaced(f"order-{i}", "c", Decimal(i)))
            append(engine, f"order-{i % 7}", ItemAdded(f"order-{i % 7}", Decimal(2)))
        _wait(lambda: _leases(engine) == {"survivor": {0, 1, 2, 3}}, "the survivor's takeover")
        _wait(lambda: summary_rows(engine) == fresh_replay(engine), "the survivor to catch up")
        rows = {r[0]: r for r in summary_rows(engine)}
        assert len(rows) == 45
        assert rows["order-3"][5] == 2 + 2  # applied counter: placed, item, two more items
        procs["survivor"].send_signal(signal.SIGTERM)
        assert procs["survivor"].wait(timeout=30) == 0, procs["survivor"].stderr
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
