"""The runner with company: competing runners, shards, held-open writers, rebuilds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from test_projection_models import (
    HOOKS,
    ItemAdded,
    OrderPlaced,
    append,
    build_summary,
    create_read_models,
    fresh_replay,
    store,
    summary_rows,
)

from cqrs.errors import ReadModelTimeout
from cqrs.projections.leases import LeaseKeeper
from cqrs.projections.rebuild import rebuild
from cqrs.projections.runner import ProjectionRunner


@pytest.fixture
def engine(cqrs_engine: Engine) -> Iterator[Engine]:
    create_read_models(cqrs_engine)
    HOOKS["fail"] = set()
    HOOKS.pop("gate", None)
    yield cqrs_engine


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Writers:
    """Threads appending ItemAdded events to a few streams until stopped."""

    def __init__(self, engine: Engine, streams: int = 8, threads: int = 3) -> None:
        self.engine = engine
        self.stop = threading.Event()
        self.count = 0
        self.errors: list[BaseException] = []
        for i in range(streams):
            append(engine, f"order-{i}", OrderPlaced(f"order-{i}", "c", Decimal(0)))
        self.threads = [
            threading.Thread(target=self._write, args=(t, streams)) for t in range(threads)
        ]

    def _write(self, t: int, streams: int) -> None:
        n = 0
        try:
            while not self.stop.is_set() and n < 2000:
                sid = f"order-{(t + n) % streams}"
                append(self.engine, sid, ItemAdded(sid, Decimal(1)))
                self.count += 1
                n += 1
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.errors.append(exc)

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not self.errors, self.errors


def _total_items(engine: Engine) -> int:
    return sum(r[4] for r in summary_rows(engine))


def test_two_runners_on_one_projection_never_double_apply(engine: Engine) -> None:
    runners = [
        ProjectionRunner(engine, [build_summary(batch_size=7)], store=store(), poll_interval=0.01)
        for _ in range(2)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run_forever, args=(stop,)) for r in runners]
    for thread in threads:
        thread.start()
    try:
        with Writers(engine) as writers:
            time.sleep(1.0)
        _wait(lambda: _total_items(engine) >= writers.count, "the runners to catch up")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert _total_items(engine) == writers.count
    assert summary_rows(engine) == fresh_replay(engine)
    # Every row's applied counter equals its events: nothing applied twice.
    assert sum(r[5] for r in summary_rows(engine)) == writers.count + 8


def test_held_open_transaction_loses_no_events(engine: Engine) -> None:
    runner = ProjectionRunner(engine, [build_summary()], store=store(), listen=False)
    held = Session(engine)
    held.begin()
    store().append(held, "order-early", [OrderPlaced("order-early", "c", Decimal(1))])
    held_pid = held.execute(text("SELECT pg_backend_pid()")).scalar_one()
    append(engine, "order-late", OrderPlaced("order-late", "c", Decimal(2)))
    # The later commit is not readable while the older transaction is open: catching
    # up to the head times out and names the transaction that holds it back ...
    with pytest.raises(ReadModelTimeout) as timed_out:
        runner.run_until_caught_up(timeout=0.5)
    assert timed_out.value.holder is not None and timed_out.value.holder.pid == held_pid
    assert f"pid {held_pid}" in str(timed_out.value)
    assert summary_rows(engine) == []
    held.commit()
    held.close()
    runner.run_until_caught_up()
    # ... and neither event is lost once it ends.
    assert [r[0] for r in summary_rows(engine)] == ["order-early", "order-late"]


def test_shards_split_streams_between_runners(engine: Engine) -> None:
    projections = [build_summary(shards=4) for _ in range(2)]
    runners = [
        ProjectionRunner(engine, [p], store=store(), poll_interval=0.01, lease_ttl=1.5)
        for p in projections
    ]
    for i in range(40):
        append(engine, f"order-{i}", OrderPlaced(f"order-{i}", "c", Decimal(i)))
    stop = threading.Event()
    threads = [threading.Thread(target=r.run_forever, args=(stop,)) for r in runners]
    for thread in threads:
        thread.start()
    try:
        _wait(lambda: len(summary_rows(engine)) == 40, "the sharded runners")
        # Both runners hold leases: two each once both heartbeats are seen.
        _wait(
            lambda: all(len(r.leases._held.get("order_summary", [])) == 2 for r in runners),
            "the shards to be shared",
        )
        held = [set(r.leases._held["order_summary"]) for r in runners]
        assert held[0].isdisjoint(held[1]) and held[0] | held[1] == {0, 1, 2, 3}
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert summary_rows(engine) == fresh_replay(engine)
    with engine.connect() as conn:
        shards = conn.execute(
            text("SELECT count(*) FROM checkpoints WHERE projection = 'order_summary'")
        ).scalar_one()
    assert shards == 4


def test_a_dead_runner_loses_its_shards(engine: Engine) -> None:
    projection = build_summary(shards=2)
    dead = LeaseKeeper(engine, "dead-runner", ttl=0.5)
    assert dead.renew(projection) == [0, 1]
    alive = LeaseKeeper(engine, "alive-runner", ttl=0.5)
    assert alive.renew(projection) == []  # both shards still leased
    time.sleep(0.7)  # the dead runner's leases and heartbeat expire
    assert alive.renew(projection) == [0, 1]


def test_rebuild_while_writers_append_equals_fresh_replay(engine: Engine) -> None:
    live = ProjectionRunner(engine, [build_summary(batch_size=50)], store=store(),
                            poll_interval=0.01)  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=live.run_forever, args=(stop,))
    thread.start()
    progress: list[tuple[int, int]] = []
    try:
        with Writers(engine, threads=2) as writers:
            time.sleep(0.3)
            result = rebuild(engine, build_summary(batch_size=50),
                             progress=lambda d, t: progress.append((d, t)))  # fmt: skip
            time.sleep(0.3)
        _wait(lambda: _total_items(engine) >= writers.count, "the live runner after the swap")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert result.events > 0 and progress
    assert summary_rows(engine) == fresh_replay(engine)
    assert _total_items(engine) == writers.count
    with engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'pj_order_summary%' "
                 "AND schemaname = current_schema()")
        ).scalars().all()  # fmt: skip
        pkey = conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'pj_order_summary' "
                 "AND schemaname = current_schema()")
        ).scalars().all()  # fmt: skip
    assert tables == ["pj_order_summary"]
    assert pkey == ["pj_order_summary_pkey"]


def test_runner_keeps_partitions_ahead(engine: Engine) -> None:
    from cqrs.config import Settings
    from cqrs.store import partitions

    with engine.begin() as conn:
        if partitions.partition_strategy(conn) != "range":
            names = []
        else:
            names = [p.name for p in partitions.list_partitions(conn)]
            newest = max(names)
            conn.execute(text(f'ALTER TABLE events DETACH PARTITION "{newest}"'))
            conn.execute(text(f'DROP TABLE "{newest}"'))
    runner = ProjectionRunner(engine, [build_summary()], store=store(), listen=False,
                              settings=Settings(months_ahead=3))  # fmt: skip
    created = runner.upkeep(force=True)
    if names:
        assert created == [max(names)]
    assert runner.upkeep() == []  # not due yet
    runner.close()
