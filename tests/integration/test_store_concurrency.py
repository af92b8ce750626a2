"""Internal: many writers at once, threads and processes, on shared and distinct streams.

With exact expected versions exactly one writer wins each version and every other
one gets a ConcurrencyError; nothing is lost or doubled; a reader tailing
``read_all`` while transactions commit out of order (some held open, some rolled
back) sees exactly the committed events, each once, in cursor order.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import START, Event, EventRegistry, EventStore, NewEvent, Position, Settings, event, uuid7
from cqrs.errors import ConcurrencyError
from cqrs.testing import schema_engine

registry = EventRegistry()
WRITERS = 8
GUARD = 60.0  # seconds; only guards against hangs


@event("concurrency.tick", registry=registry)
class Tick(Event):
    writer: int
    step: int


@pytest.fixture
def store() -> EventStore:
    return EventStore(registry=registry)


def _run_threads(target: Any, count: int) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=GUARD)
    assert not any(t.is_alive() for t in threads), "a writer thread hung"
    assert not errors, errors


def _all_ids(engine: Engine) -> list[uuid.UUID]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_id FROM events"))]


def _assert_consecutive(store: EventStore, engine: Engine, stream_id: str, n: int) -> list[Any]:
    with Session(engine) as s:
        events = store.read_stream(s, stream_id)
    assert [e.version for e in events] == list(range(1, n + 1))
    return events


def test_threads_one_winner_per_expected_version(log_engine: Engine, store: EventStore) -> None:
    rounds = 6
    barrier = threading.Barrier(WRITERS)
    outcomes: list[tuple[int, int, object]] = []

    def writer(w: int) -> None:
        for r in range(rounds):
            with Session(log_engine) as s, s.begin():  # a distinct stream: always wins
                store.append(s, f"own-{w}", [Tick(w, r)], expected_version=r)
            barrier.wait(timeout=GUARD)
            try:
                with Session(log_engine) as s, s.begin():
                    result = store.append(s, "race-1", [Tick(w, r)], expected_version=r)
                outcomes.append((r, w, result.version))
            except ConcurrencyError as exc:
                outcomes.append((r, w, exc))
            barrier.wait(timeout=GUARD)

    _run_threads(writer, WRITERS)
    winners = {}
    for r in range(rounds):
        this_round = [o for o in outcomes if o[0] == r]
        won = [o for o in this_round if not isinstance(o[2], ConcurrencyError)]
        lost = [o[2] for o in this_round if isinstance(o[2], ConcurrencyError)]
        assert len(this_round) == WRITERS and len(won) == 1, this_round
        assert won[0][2] == r + 1
        assert {(e.stream_id, e.expected, e.actual) for e in lost} == {("race-1", r, r + 1)}
        winners[r] = won[0][1]
    race = _assert_consecutive(store, log_engine, "race-1", rounds)
    assert [(e.event.writer, e.event.step) for e in race] == [
        (winners[r], r) for r in range(rounds)
    ]
    for w in range(WRITERS):
        _assert_consecutive(store, log_engine, f"own-{w}", rounds)
    ids = _all_ids(log_engine)
    assert len(ids) == len(set(ids)) == rounds * (WRITERS + 1)


def test_threads_retrying_on_a_hot_stream_lose_nothing(
    log_engine: Engine, store: EventStore
) -> None:
    per_writer = 10
    won: list[tuple[int, uuid.UUID]] = []  # (expected version, event id)

    def writer(w: int) -> None:
        done = attempts = 0
        while done < per_writer:
            attempts += 1
            assert attempts < 2000, "writer starved"
            eid = uuid7()
            try:
                with Session(log_engine) as s, s.begin():
                    info = store.stream_info(s, "hot-1")
                    version = 0 if info is None else info.version
                    store.append(
                        s, "hot-1", [NewEvent(Tick(w, done), eid)], expected_version=version
                    )
            except ConcurrencyError:
                continue
            won.append((version, eid))
            done += 1

    _run_threads(writer, WRITERS)
    total = WRITERS * per_writer
    assert sorted(v for v, _ in won) == list(range(total))  # one winner per version
    events = _assert_consecutive(store, log_engine, "hot-1", total)
    assert {e.event_id for e in events} == {eid for _, eid in won}
    assert Counter(e.event.writer for e in events) == dict.fromkeys(range(WRITERS), per_writer)
    assert sorted(_all_ids(log_engine)) == sorted(eid for _, eid in won)


def _process_writer(
    url: str,
    schema: str,
    w: int,
    rounds: int,
    barrier: Any,
    results: Any,
    settings: Settings,
) -> None:
    engine = schema_engine(url, schema, pool_size=1)
    store = EventStore(registry=registry, settings=settings)
    try:
        for r in range(rounds):
            with Session(engine) as s, s.begin():
                store.append(s, f"proc-{w}", [Tick(w, r)], expected_version=r)
            barrier.wait(timeout=GUARD)
            try:
                with Session(engine) as s, s.begin():
                    version = store.append(s, "shared-1", [Tick(w, r)], expected_version=r).version
                results.put((r, w, "won", version, None))
            except ConcurrencyError as exc:
                results.put((r, w, "lost", exc.expected, exc.actual))
            barrier.wait(timeout=GUARD)
    finally:
        engine.dispose()


def test_processes_one_winner_per_expected_version(
    log_engine: Engine, cqrs_database_url: str, store: EventStore
) -> None:
    rounds = 4
    with log_engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    # forkserver: children fork from one server that imported the toolkit once (cheap), and
    # never inherit this process's open connections (what plain fork would do)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sqlalchemy.orm", "psycopg", "cqrs", __name__])
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    args = (cqrs_database_url, schema)
    procs = [
        ctx.Process(
            target=_process_writer,
            args=(*args, w, rounds, barrier, results, store.settings),
        )
        for w in range(WRITERS)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=GUARD) for _ in range(WRITERS * rounds)]
    for p in procs:
        p.join(timeout=GUARD)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    winners = {}
    for r in range(rounds):
        this_round = [o for o in outcomes if o[0] == r]
        won = [o for o in this_round if o[2] == "won"]
        assert len(won) == 1 and won[0][3] == r + 1, this_round
        assert {(o[3], o[4]) for o in this_round if o[2] == "lost"} == {(r, r + 1)}
        winners[r] = won[0][1]
    shared = _assert_consecutive(store, log_engine, "shared-1", rounds)
    assert [e.event.writer for e in shared] == [winners[r] for r in range(rounds)]
    for w in range(WRITERS):
        _assert_consecutive(store, log_engine, f"proc-{w}", rounds)
    ids = _all_ids(log_engine)
    assert len(ids) == len(set(ids)) == rounds * (WRITERS + 1)


class _Rollback(Exception):
    pass


def test_tailing_reader_sees_exactly_the_committed_events(
    log_engine: Engine, store: EventStore, record_property: Any
) -> None:
    per_writer = 20
    committed: list[uuid.UUID] = []
    rolled_back: list[uuid.UUID] = []
    writers_done = threading.Event()
    seen: list[tuple[uuid.UUID, Position]] = []
    naive_seen: list[uuid.UUID] = []

    def writer(w: int) -> None:
        rnd = random.Random(w)
        for k in range(per_writer):
            stream = f"shared-{rnd.randrange(3)}" if rnd.random() < 0.4 else f"w{w}-{k}"
            batch = [NewEvent(Tick(w, k)) for _ in range(rnd.randint(1, 3))]
            ids = [e.event_id for e in batch]
            try:
                with Session(log_engine) as s, s.begin():
                    store.append(s, stream, batch)
                    if rnd.random() < 0.25:  # hold the transaction open a while
                        time.sleep(rnd.uniform(0.01, 0.06))
                    if rnd.random() < 0.15:
                        raise _Rollback
                committed.extend(ids)
            except _Rollback:
                rolled_back.extend(ids)

    def reader() -> None:
        cursor, naive_last = START, 0
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            finished = writers_done.is_set()
            with log_engine.connect() as conn:
                page = store.read_all(conn, after=cursor, limit=50)
                naive = conn.execute(
                    text(
                        "SELECT event_id, global_position FROM events "
                        "WHERE global_position > :last ORDER BY global_position LIMIT 50"
                    ),
                    {"last": naive_last},
                ).all()
            seen.extend((e.event_id, e.position) for e in page)
            if page:
                cursor = page[-1].position
            naive_seen.extend(r[0] for r in naive)
            if naive:
                naive_last = naive[-1][1]
            if finished and not page and not naive and len(seen) >= len(committed):
                return
            if not page:
                time.sleep(0.002)

    tail = threading.Thread(target=reader)
    tail.start()
    _run_threads(writer, WRITERS)
    writers_done.set()
    tail.join(timeout=GUARD + 5)
    assert not tail.is_alive(), "reader hung"

    ids = [eid for eid, _ in seen]
    positions = [p for _, p in seen]
    assert len(ids) == len(set(ids)), "the reader saw an event twice"
    assert set(ids) == set(committed), "the reader's events differ from the committed set"
    assert not set(ids) & set(rolled_back)
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert len(committed) > 200 and rolled_back
    naive_missed = len(set(committed) - set(naive_seen))
    record_property("naive_reader_missed", naive_missed)
    print(
        f"\ntailing: {len(committed)} committed, {len(rolled_back)} rolled back, "
        f"gap-free reader saw {len(ids)}, naive position>last reader missed {naive_missed}"
    )
