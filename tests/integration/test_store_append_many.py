"""Internal: ``EventStore.append_many`` against PostgreSQL, in both layouts.

Many streams in one statement, each with its own expected version, all or
nothing: every refused stream reported in one error, the caller's transaction
left usable, per-stream log order kept under concurrent writers, and the unit
of work saving every touched aggregate through it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Session

from cqrs import (
    ANY,
    NO_STREAM,
    START,
    Aggregate,
    CommandBus,
    Event,
    EventRegistry,
    EventStore,
    StreamAppend,
    UnitOfWork,
    applies,
)
from cqrs import event as declare
from cqrs.errors import (
    AppendRefused,
    ConcurrencyError,
    InvalidInput,
    StreamArchived,
    TransactionConflict,
)

registry = EventRegistry()


@declare("many.noted", registry=registry)
class Noted(Event):
    text: str


@declare("many.moved", registry=registry)
class Moved(Event):
    amount: Decimal


@pytest.fixture
def store() -> EventStore:
    return EventStore(registry=registry)


@pytest.fixture
def recorded(log_engine: Engine) -> Iterator[list[str]]:
    """Every statement sent on ``log_engine`` that writes events."""
    seen: list[str] = []

    def record(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        if "INSERT INTO events" in statement:
            seen.append(statement)

    event.listen(log_engine, "before_cursor_execute", record)
    yield seen
    event.remove(log_engine, "before_cursor_execute", record)


def _versions(engine: Engine) -> dict[str, list[int]]:
    """Each stream's versions in log order."""
    found: dict[str, list[int]] = {}
    with Session(engine) as session:
        for e in EventStore(registry=registry).read_all(session, after=START, limit=10_000):
            found.setdefault(e.stream_id, []).append(e.version)
    return found


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_many_streams_in_one_statement(
    log_engine: Engine, store: EventStore, recorded: list[str]
) -> None:
    with Session(log_engine) as session, session.begin():
        store.append(session, "acct-3", [Noted("opened")])
    recorded.clear()
    with Session(log_engine) as session, session.begin():
        results = store.append_many(
            session,
            [
                StreamAppend("acct-1", [Noted("a"), Noted("b")], expected_version=NO_STREAM),
                StreamAppend("acct-2", [Moved(Decimal("1.5"))], stream_type="ledger"),
                StreamAppend("acct-3", [Noted("c")], expected_version=1, metadata={"k": 1}),
            ],
            metadata={"correlation_id": "x"},
        )
    assert len(recorded) == 1  # one statement for three streams
    assert [(r.stream_id, r.version, r.appended) for r in results] == [
        ("acct-1", 2, 2),
        ("acct-2", 1, 1),
        ("acct-3", 2, 1),
    ]
    assert results[1].recorded[0].stream_type == "ledger"
    assert results[2].recorded[0].metadata == {"correlation_id": "x", "k": 1}
    with Session(log_engine) as session:
        assert [e.event for e in store.read_stream(session, "acct-1")] == [Noted("a"), Noted("b")]
        info = store.stream_info(session, "acct-2")
        assert info is not None and (info.stream_type, info.version) == ("ledger", 1)
    assert _versions(log_engine) == {"acct-3": [1, 2], "acct-1": [1, 2], "acct-2": [1]}
    positions = [e.position for r in results for e in r.recorded]
    assert positions == sorted(positions)  # one transaction, in the caller's order


def test_one_refused_stream_writes_nothing_and_keeps_the_transaction(
    log_engine: Engine, store: EventStore
) -> None:
    with Session(log_engine) as session, session.begin():
        store.append(session, "acct-1", [Noted("opened")])
    with Session(log_engine) as session, session.begin():
        session.execute(text("CREATE TEMP TABLE own (n int) ON COMMIT DROP"))
        session.execute(text("INSERT INTO own VALUES (1)"))
        with pytest.raises(ConcurrencyError) as refused:
            store.append_many(
                session,
                [
                    StreamAppend("acct-2", [Noted("new")], expected_version=NO_STREAM),
                    StreamAppend("acct-1", [Noted("late")], expected_version=5),
                ],
            )
        assert not isinstance(refused.value, AppendRefused)
        assert (refused.value.stream_id, refused.value.expected, refused.value.actual) == (
            "acct-1",
            5,
            1,
        )
        # nothing of the call was written, and the transaction goes on
        assert session.execute(text("SELECT count(*) FROM own")).scalar_one() == 1
        store.append(session, "acct-9", [Noted("after")])
    assert _versions(log_engine) == {"acct-1": [1], "acct-9": [1]}
    assert _count(log_engine, "SELECT count(*) FROM streams WHERE stream_id = 'acct-2'") == 0


def test_every_refused_stream_is_reported_in_one_error(
    log_engine: Engine, store: EventStore
) -> None:
    with Session(log_engine) as session, session.begin():
        store.append(session, "acct-1", [Noted("a")])
        store.append(session, "acct-2", [Noted("b"), Noted("c")])
        store.append(session, "acct-3", [Noted("d")])
        store.archive(session, "acct-3")
    with Session(log_engine) as session, session.begin(), pytest.raises(AppendRefused) as err:
        store.append_many(
            session,
            [
                StreamAppend("acct-1", [Noted("x")], expected_version=NO_STREAM),
                StreamAppend("acct-2", [Noted("y")], expected_version=2),  # holds
                StreamAppend("acct-3", [Noted("z")]),
                StreamAppend("acct-4", [Noted("w")], expected_version=7),
            ],
        )
    refusals = err.value.refusals
    assert sorted(refusals) == ["acct-1", "acct-3", "acct-4"]
    assert isinstance(refusals["acct-1"], ConcurrencyError) and refusals["acct-1"].actual == 1
    assert isinstance(refusals["acct-3"], StreamArchived)
    assert isinstance(refusals["acct-4"], ConcurrencyError) and refusals["acct-4"].actual is None
    assert "acct-1" in str(err.value) and "acct-4" in str(err.value)
    assert _count(log_engine, "SELECT count(*) FROM events") == 4


def test_bad_input_sends_nothing(
    log_engine: Engine, store: EventStore, recorded: list[str]
) -> None:
    with Session(log_engine) as session, session.begin():
        with pytest.raises(InvalidInput, match="appears twice"):
            store.append_many(
                session, [StreamAppend("acct-1", [Noted("a")]), StreamAppend("acct-1", [])]
            )
        with pytest.raises(InvalidInput, match="list of StreamAppend"):
            store.append_many(session, StreamAppend("acct-1", [Noted("a")]))  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="StreamAppend"):
            store.append_many(session, [("acct-1", [Noted("a")])])  # type: ignore[list-item]
        with pytest.raises(InvalidInput):
            store.append_many(
                session,
                [StreamAppend("acct-1", [Noted("a")]), StreamAppend("", [Noted("b")])],
            )
    assert recorded == []


def test_a_stream_created_concurrently_after_the_check_tears_nothing(
    log_engine: Engine, store: EventStore
) -> None:
    """The one race the check cannot lock out: a new stream created by a transaction that
    commits while the statement waits for it. The statement fails as a whole."""
    other = Session(log_engine)
    other.begin()
    other.execute(text("CREATE TEMP TABLE first_write (n int)"))  # has an id: takes no lock
    store.append(other, "acct-2", [Noted("theirs")], expected_version=NO_STREAM)
    outcome: list[BaseException | None] = []

    def ours() -> None:
        try:
            with Session(log_engine) as session, session.begin():
                store.append_many(
                    session,
                    [
                        StreamAppend("acct-1", [Noted("ours")], expected_version=NO_STREAM),
                        StreamAppend("acct-2", [Noted("ours")], expected_version=NO_STREAM),
                    ],
                )
        except BaseException as exc:  # looked at below, in the test's thread
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=ours)
    thread.start()
    _wait_for_a_lock_wait(log_engine)
    other.commit()
    other.close()
    thread.join(30)
    assert outcome and isinstance(outcome[0], AppendRefused) and outcome[0].torn
    assert _versions(log_engine) == {"acct-2": [1]}
    assert _count(log_engine, "SELECT count(*) FROM streams") == 1


def _wait_for_a_lock_wait(engine: Engine) -> None:
    import time

    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the append never waited for the other transaction")


def test_concurrent_writers_over_overlapping_streams(log_engine: Engine, store: EventStore) -> None:
    """Six writers, each transaction touching two or three of five streams in random
    order, half of them writing their own table first: no deadlock is left unhandled,
    nothing is lost, and every stream reads in version order."""
    streams = [f"acct-{i}" for i in range(5)]
    committed: list[dict[str, int]] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(15):
                chosen = rng.sample(streams, rng.choice([2, 3]))
                counts = {sid: rng.randint(1, 3) for sid in chosen}
                for _attempt in range(20):
                    try:
                        with Session(log_engine) as session, session.begin():
                            if rng.random() < 0.5:
                                session.execute(text("SELECT pg_current_xact_id()"))
                            store.append_many(
                                session,
                                [
                                    StreamAppend(sid, [Noted(f"{seed}") for _ in range(n)])
                                    for sid, n in counts.items()
                                ],
                            )
                        break
                    except (TransactionConflict, ConcurrencyError):
                        continue
                else:
                    raise AssertionError("20 conflicts in a row")
                with lock:
                    committed.append(counts)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    expected = {sid: sum(c.get(sid, 0) for c in committed) for sid in streams}
    found = _versions(log_engine)
    for sid in streams:
        assert found.get(sid, []) == list(range(1, expected[sid] + 1)), sid


# -- the unit of work ---------------------------------------------------------


@declare("many.opened", registry=registry)
class Opened(Event):
    owner: str


class Account(Aggregate):
    aggregate_type = "acct"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.notes = 0

    def open(self, owner: str) -> None:
        self.record(Opened(owner))

    def note(self, text: str) -> None:
        self.record(Noted(text))

    @applies(Opened)
    def _opened(self, e: Opened) -> None:
        pass

    @applies(Noted)
    def _noted(self, e: Noted) -> None:
        self.notes += 1


def test_unit_of_work_saves_every_touched_aggregate_in_one_statement(
    log_engine: Engine, recorded: list[str]
) -> None:
    store = EventStore(registry=registry)
    with Session(log_engine) as session, session.begin():
        uow = UnitOfWork(session, store=store)
        accounts = uow.repository(Account)
        for i in range(50):
            accounts.create(f"a{i}").open(f"owner-{i}")
        results = uow.flush()
    assert len(recorded) == 1
    assert len(results) == 50 and all(r.version == 1 for r in results)
    recorded.clear()
    with Session(log_engine) as session, session.begin():
        uow = UnitOfWork(session, store=store)
        accounts = uow.repository(Account)
        accounts.get("a1").note("x")
        accounts.get("a2").note("y")
        uow.flush()
    assert len(recorded) == 1
    with Session(log_engine) as session:
        assert [e.version for e in store.read_stream(session, "acct-a2")] == [1, 2]


def test_a_stale_aggregate_refuses_the_whole_unit_of_work(log_engine: Engine) -> None:
    store = EventStore(registry=registry)
    bus = CommandBus(store=store)
    with Session(log_engine) as session, session.begin():
        uow = UnitOfWork(session, store=store)
        uow.repository(Account).create("b1").open("x")
        uow.repository(Account).create("b2").open("y")
        uow.flush()
    with Session(log_engine) as session, session.begin():
        uow = UnitOfWork(session, store=store)
        first = uow.repository(Account).get("b1")
        second = uow.repository(Account).get("b2")
        with Session(log_engine) as sneaky, sneaky.begin():  # b2 moves on meanwhile
            store.append(sneaky, "acct-b2", [Noted("sneaky")], expected_version=ANY)
        first.note("ours")
        second.note("ours")
        with pytest.raises(ConcurrencyError) as err:
            uow.flush()
        assert err.value.stream_id == "acct-b2"
    assert _versions(log_engine) == {"acct-b1": [1], "acct-b2": [1, 2]}
    assert bus is not None


# -- bulk imports through COPY --------------------------------------------------


def test_import_streams_copies_new_streams_in_order(
    log_engine: Engine, store: EventStore, recorded: list[str]
) -> None:
    streams = [
        StreamAppend(f"imp-{n}", [Noted(f"{n}.{k}") for k in range(1, 4)], metadata={"src": n})
        for n in range(200)
    ]
    with Session(log_engine) as session, session.begin():
        session.execute(text("SELECT 1"))
        assert store.import_streams(session, streams) == 600
    assert recorded == []  # no INSERT INTO events: COPY
    found = _versions(log_engine)
    assert len(found) == 200 and all(v == [1, 2, 3] for v in found.values())
    with Session(log_engine) as session:
        events = store.read_stream(session, "imp-7")
        assert [e.event for e in events] == [Noted("7.1"), Noted("7.2"), Noted("7.3")]
        assert events[0].metadata == {"src": 7}
        info = store.stream_info(session, "imp-7")
        assert info is not None and info.version == 3
        # the imported streams take appends like any other
        assert store.append(session, "imp-7", [Noted("next")], expected_version=3).version == 4
        read = store.read_all(session, after=START, limit=1000)
    positions = [e.position for e in read]
    assert positions == sorted(positions)
    assert [e.event.text for e in read[:4]] == ["0.1", "0.2", "0.3", "1.1"]


def test_import_streams_refuses_existing_streams_and_writes_nothing(
    log_engine: Engine, store: EventStore
) -> None:
    with Session(log_engine) as session, session.begin():
        store.append(session, "imp-1", [Noted("there")])
        store.append(session, "imp-2", [Noted("there")])
    with Session(log_engine) as session, session.begin():
        with pytest.raises(AppendRefused) as err:
            store.import_streams(
                session,
                [StreamAppend(f"imp-{n}", [Noted("new")]) for n in range(4)],
            )
        assert sorted(err.value.refusals) == ["imp-1", "imp-2"]
        with pytest.raises(ConcurrencyError) as one:
            store.import_streams(session, [StreamAppend("imp-1", [Noted("new")])])
        assert one.value.actual == 1
        with pytest.raises(InvalidInput, match="new streams only"):
            store.import_streams(session, [StreamAppend("imp-9", [Noted("x")], expected_version=2)])
        store.append(session, "imp-8", [Noted("the transaction goes on")])
    assert _count(log_engine, "SELECT count(*) FROM streams") == 3
    assert _count(log_engine, "SELECT count(*) FROM events") == 3
