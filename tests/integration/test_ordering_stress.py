"""The ordering contract under load: 12 writers with every transaction shape a service
writes, a live ``read_all`` tailer and a live runner.

Writers append to 16 shared streams. A quarter of their transactions write a
table of their own first, a quarter touch two streams, some append with
``ANY``; they sleep inside open transactions, a few hold theirs open for over a
second, some roll back, and every conflict is retried in a fresh transaction.

The tailer must see every committed event once, each stream's versions
ascending; the runner's read model (an order-sensitive chain of the events'
tags) must equal the one computed from the table in version order, which a
replay of a misordered log would not reveal. Without ``streams.last_xid``
(``cqrs/store/sql.py``) this test fails: streams come out as v1, v3, v2.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import Engine, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cqrs import ANY, NO_STREAM, START, Event, EventRegistry, EventStore, Position, event
from cqrs.errors import ConcurrencyError
from cqrs.events.model import RecordedEvent
from cqrs.projections import Projection, ProjectionRunner, wait_for
from cqrs.projections.declarative import ProjectionContext

registry = EventRegistry()
WRITERS = 12
TRANSACTIONS = 25  # per writer
STREAMS = [f"chain-{i}" for i in range(16)]
GUARD = 120.0  # seconds; only guards against hangs


@event("stress.opened", registry=registry)
class Opened(Event):
    tag: str


@event("stress.noted", registry=registry)
class Noted(Event):
    tag: str


class Base(DeclarativeBase):
    pass


class Chain(Base):
    __tablename__ = "stress_chain"
    stream_id: Mapped[str] = mapped_column(String, primary_key=True)
    tags: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer)


chains = Projection("stress_chain", Chain, registry=registry, batch_size=50)


@chains.on(Opened)
def _opened(e: RecordedEvent[Opened], ctx: ProjectionContext) -> None:
    ctx.upsert(Chain, stream_id=e.stream_id, tags=e.event.tag, count=1)


# Now and then a batch of the read model stays open a while after its writes: marked as
# appending nothing (cqrs.store.no_append), it must not hold the tailer back, nor let it
# skip anything. Whether each such batch was marked is recorded here.
_PAUSES = random.Random(7)
MARKED: list[bool] = []


@chains.on(Noted)
def _noted(e: RecordedEvent[Noted], ctx: ProjectionContext) -> None:
    ctx.update(Chain, e.stream_id, tags=Chain.tags + ("," + e.event.tag), count=Chain.count + 1)
    if _PAUSES.random() < 0.02:
        mark = "SELECT current_setting('cqrs.no_append', true)"
        MARKED.append(ctx.connection.exec_driver_sql(mark).scalar_one() == "on")
        time.sleep(0.1)


def one_transaction(engine: Engine, store: EventStore, rng: random.Random, tag: str) -> bool:
    """One writer transaction of a random shape; False when it rolled back on purpose."""
    shape = rng.random()
    streams = rng.sample(STREAMS, 2 if shape < 0.25 else 1)
    with Session(engine) as session, session.begin():
        if 0.25 <= shape < 0.5:  # the service's own table first
            session.execute(text("INSERT INTO stress_own (tag) VALUES (:t)"), {"t": tag})
        for n, stream_id in enumerate(streams):
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0, 0.02))  # inside the open transaction
            if rng.random() < 0.3:
                store.append(session, stream_id, [Noted(f"{tag}.{n}")], expected_version=ANY)
            else:
                info = store.stream_info(session, stream_id)
                assert info is not None
                store.append(
                    session, stream_id, [Noted(f"{tag}.{n}")], expected_version=info.version
                )
        if rng.random() < 0.04:
            time.sleep(rng.uniform(1.0, 1.6))  # held open for over a second
        if rng.random() < 0.1:
            session.rollback()
            return False
    return True


def writer(engine: Engine, store: EventStore, w: int, conflicts: list[int]) -> None:
    rng = random.Random(w)
    for t in range(TRANSACTIONS):
        for attempt in range(200):
            try:
                one_transaction(engine, store, rng, f"w{w}t{t}a{attempt}")
                break
            except ConcurrencyError:
                conflicts.append(1)
                time.sleep(rng.uniform(0, 0.005))
        else:  # pragma: no cover - reported by the test
            raise AssertionError(f"writer {w} never got transaction {t} through")


class Tailer(threading.Thread):
    """Follows ``read_all`` from the start until told where the log ends."""

    def __init__(self, engine: Engine, store: EventStore) -> None:
        super().__init__(daemon=True)
        self.engine, self.store = engine, store
        self.seen: list[tuple[str, int, str]] = []
        self.until: Position | None = None
        self.error: BaseException | None = None
        self.reached = threading.Event()

    def run(self) -> None:
        after = START
        try:
            with self.engine.connect() as conn:
                while self.until is None or after < self.until:
                    page = self.store.read_all(conn, after=after, limit=37)
                    conn.rollback()
                    for e in page:
                        self.seen.append((e.stream_id, e.version, str(e.event_id)))
                    if page:
                        after = page[-1].position
                    else:
                        time.sleep(0.005)
            self.reached.set()
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.error = exc


@pytest.fixture
def engine(cqrs_engine: Engine) -> Engine:
    Base.metadata.create_all(cqrs_engine)
    with cqrs_engine.begin() as conn:
        conn.execute(text("CREATE TABLE stress_own (tag text NOT NULL)"))
    return cqrs_engine


@pytest.mark.slow
def test_every_stream_in_version_order_under_every_transaction_shape(engine: Engine) -> None:
    store = EventStore(registry=registry)
    with Session(engine) as session, session.begin():
        for stream_id in STREAMS:
            store.append(session, stream_id, [Opened("open")], expected_version=NO_STREAM)
    tailer = Tailer(engine, store)
    tailer.start()
    runner = ProjectionRunner(engine, [chains], store=store, poll_interval=0.05)
    stop = threading.Event()
    runner_thread = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    runner_thread.start()
    conflicts: list[int] = []
    errors: list[BaseException] = []

    def guarded(w: int) -> None:
        try:
            writer(engine, store, w, conflicts)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,)) for w in range(WRITERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=GUARD)
        assert not any(t.is_alive() for t in threads), "a writer hung"
        assert not errors, errors[:3]
        with engine.connect() as conn:
            head = store.head(conn)
        tailer.until = head
        assert tailer.reached.wait(GUARD), f"the tailer stopped short of {head}"
        assert tailer.error is None, tailer.error
        wait_for(engine, chains, head, timeout=GUARD)
    finally:
        stop.set()
        runner_thread.join(timeout=30)

    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT stream_id, version, event_id::text FROM events ORDER BY 1, 2")
        ).all()
        from_table = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                text(
                    "SELECT stream_id, string_agg(data->>'tag', ',' ORDER BY version), count(*) "
                    "FROM events GROUP BY stream_id"
                )
            )
        }
        model = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT * FROM stress_chain"))}
        own = conn.execute(text("SELECT count(*) FROM stress_own")).scalar_one()

    # Nothing missed, nothing doubled.
    assert sorted(e[2] for e in tailer.seen) == sorted(r[2] for r in stored)
    assert len({e[2] for e in tailer.seen}) == len(tailer.seen)
    # Each stream's versions strictly ascending (1, 2, 3, ...) in read order.
    by_stream: dict[str, list[int]] = defaultdict(list)
    for stream_id, version, _ in tailer.seen:
        by_stream[stream_id].append(version)
    for stream_id, versions in by_stream.items():
        assert versions == list(range(1, len(versions) + 1)), (stream_id, versions)
    # The read model equals the one computed from the table in version order.
    assert model == from_table
    # The work really had the shapes it claims.
    assert len(stored) > WRITERS * TRANSACTIONS
    assert own > 0
    assert MARKED and all(MARKED), MARKED  # the read model's batches held open were marked
    report: dict[str, Any] = {"events": len(stored), "conflicts retried": len(conflicts)}
    print(report)
