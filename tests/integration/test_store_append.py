"""Internal: ``EventStore.append`` against PostgreSQL, in both layouts.

What the conformance suite cannot see from outside: bad input sends no SQL at
all, rows and positions as stored, writers of one stream waiting for each other
(and only for each other: no global lock), concurrent re-sends, and a missing
partition.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Session

from cqrs import NO_STREAM, START, Event, EventRegistry, EventStore, NewEvent, Settings
from cqrs import event as declare
from cqrs.errors import (
    ConcurrencyError,
    InvalidInput,
    InvalidStreamId,
    PartitionMissing,
    PayloadTooLarge,
    SerializationError,
)
from cqrs.store import partitions
from cqrs.testing import isolated_schema

registry = EventRegistry()
GUARD = 30.0


@declare("append.placed", registry=registry)
class Placed(Event):
    order_id: str
    total: Decimal


@declare("append.note", registry=registry)
class Note(Event):
    text: Any = None


@pytest.fixture
def store() -> EventStore:
    return EventStore(registry=registry, settings=Settings(max_payload_bytes=500))


@pytest.fixture
def statements(log_engine: Engine) -> Iterator[tuple[Connection, list[str]]]:
    """A connection in a transaction that records every SQL statement it sends."""
    seen: list[str] = []
    with log_engine.connect() as conn:

        def record(*args: Any) -> None:
            seen.append(args[2])

        event.listen(conn, "before_cursor_execute", record)
        with conn.begin():
            yield conn, seen


BAD_CALLS: dict[str, Callable[[EventStore, Connection], object]] = {
    "empty id": lambda s, c: s.append(c, "", [Note(1)]),
    "blank id": lambda s, c: s.append(c, " \t", [Note(1)]),
    "long id": lambda s, c: s.append(c, "o" * 201, [Note(1)]),
    "int id": lambda s, c: s.append(c, 5, [Note(1)]),  # type: ignore[arg-type]
    "nul id": lambda s, c: s.append(c, "a\x00", [Note(1)]),
    "bad expected": lambda s, c: s.append(c, "o-1", [Note(1)], expected_version="2"),  # type: ignore[arg-type]
    "negative expected": lambda s, c: s.append(c, "o-1", [Note(1)], expected_version=-1),
    "bad event id": lambda s, c: s.append(
        c,
        "o-1",
        [NewEvent(Note(1)), NewEvent(Note(2), event_id="x"), NewEvent(Note(3))],  # type: ignore[arg-type]
    ),
    "oversized": lambda s, c: s.append(c, "o-1", [Note(1), Note("x" * 600)]),
    "unserialisable": lambda s, c: s.append(c, "o-1", [Note(1), Note({1})]),
    "bad metadata": lambda s, c: s.append(c, "o-1", [Note(1)], metadata={"x": object()}),
    "not a list": lambda s, c: s.append(c, "o-1", Note(1)),  # type: ignore[arg-type]
    "not an event": lambda s, c: s.append(c, "o-1", [Note(1), "note"]),  # type: ignore[list-item]
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_raises_before_any_sql(
    case: str, store: EventStore, statements: tuple[Connection, list[str]]
) -> None:
    conn, seen = statements
    with pytest.raises((InvalidInput, SerializationError)) as info:
        BAD_CALLS[case](store, conn)
    assert seen == [], f"{case}: SQL was sent before the input was rejected"
    if "id" in case and "event" not in case:
        assert isinstance(info.value, InvalidStreamId)
    if case == "oversized":
        assert isinstance(info.value, PayloadTooLarge) and info.value.size > 600


def test_stored_rows_positions_and_metadata(log_engine: Engine, store: EventStore) -> None:
    correlation = str(uuid.uuid4())
    with Session(log_engine) as s, s.begin():
        result = store.append(
            s,
            "order-1",
            [Placed("order-1", Decimal("9.90")), NewEvent(Note("n"), metadata={"user": "u-1"})],
            expected_version=NO_STREAM,
            metadata={"correlation_id": correlation, "causation_id": "cmd-1"},
        )
        xid = int(s.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())
        read = store.read_stream(s, "order-1")
    assert read == list(result.recorded)
    assert {e.position.transaction_id for e in read} == {xid}
    assert read[0].global_position < read[1].global_position
    assert result.position == read[1].position and result.version == 2
    with log_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT version, stream_type, event_type, schema_version, data, metadata, "
                "transaction_id::text, global_position FROM events ORDER BY version"
            )
        ).all()
        stream = conn.execute(text("SELECT version, stream_type FROM streams")).one()
    assert tuple(stream) == (2, "order")
    assert [tuple(r[:4]) for r in rows] == [
        (1, "order", "append.placed", 1),
        (2, "order", "append.note", 1),
    ]
    assert rows[0].data == {"order_id": "order-1", "total": "9.90"}
    assert rows[0].metadata == {"correlation_id": correlation, "causation_id": "cmd-1"}
    assert rows[1].metadata["user"] == "u-1"
    assert [(int(r[6]), r[7]) for r in rows] == [
        (e.position.transaction_id, e.global_position) for e in read
    ]
    assert [e.correlation_id for e in read] == [correlation, correlation]


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _blocked(log_engine: Engine, holder: Session, timeout: float = GUARD) -> None:
    """Wait until another session waits on a lock ``holder`` holds (the second writer)."""
    pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with log_engine.connect() as conn:
        for _ in range(int(timeout / 0.01)):
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
                ),
                {"pid": pid},
            ).scalar_one()
            if waiting:
                return
            conn.rollback()
            threading.Event().wait(0.01)
    raise AssertionError("the second writer never waited")


@pytest.mark.parametrize("first_commits", [True, False], ids=["commit", "rollback"])
def test_second_writer_of_a_stream_waits_then_loses_or_wins(
    log_engine: Engine, store: EventStore, first_commits: bool
) -> None:
    with Session(log_engine) as s, s.begin():
        store.append(s, "order-1", [Note(0)], expected_version=NO_STREAM)

    def second() -> object:
        with Session(log_engine) as s, s.begin():
            return store.append(s, "order-1", [Note("second")], expected_version=1)

    first = Session(log_engine)
    first.begin()
    store.append(first, "order-1", [Note("first")], expected_version=1)
    thread, out = _in_thread(second)
    _blocked(log_engine, first)
    if first_commits:
        first.commit()
    else:
        first.rollback()
    first.close()
    thread.join(GUARD)
    (outcome,) = out
    if first_commits:
        assert isinstance(outcome, ConcurrencyError)
        assert (outcome.expected, outcome.actual) == (1, 2)
    else:
        assert not isinstance(outcome, Exception) and outcome.version == 2  # type: ignore[attr-defined]
    with Session(log_engine) as s:
        notes = [e.event.text for e in store.read_stream(s, "order-1")]  # type: ignore[attr-defined]
    assert notes == [0, "first" if first_commits else "second"]


def test_new_stream_race_waits_for_the_creator(log_engine: Engine, store: EventStore) -> None:
    first = Session(log_engine)
    first.begin()
    store.append(first, "cart-1", [Note(1), Note(2)], expected_version=NO_STREAM)

    def second() -> object:
        with Session(log_engine) as s, s.begin():
            return store.append(s, "cart-1", [Note(3)], expected_version=NO_STREAM)

    thread, out = _in_thread(second)
    _blocked(log_engine, first)
    first.commit()
    first.close()
    thread.join(GUARD)
    (outcome,) = out
    assert isinstance(outcome, ConcurrencyError) and outcome.actual == 2
    assert outcome.expected is NO_STREAM


@pytest.mark.parametrize("explicit_ids", [False, True], ids=["fresh-ids", "explicit-ids"])
def test_no_global_lock_other_streams_keep_flowing(
    log_engine: Engine, store: EventStore, explicit_ids: bool
) -> None:
    def batch(n: int) -> list[Any]:
        return [NewEvent(Note(n))] if explicit_ids else [Note(n)]

    with Session(log_engine) as holder, holder.begin():
        store.append(holder, "slow-1", batch(1), expected_version=NO_STREAM)
        for i in range(5):  # would time out if an open append blocked other streams
            with Session(log_engine) as s, s.begin():
                s.execute(text("SET LOCAL lock_timeout = '5s'"))
                store.append(s, f"fast-{i}", batch(i), expected_version=NO_STREAM)
                store.append(s, f"fast-{i}", batch(i + 10), expected_version=1)
    with log_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 11


def test_concurrent_resends_of_one_batch_write_it_once(
    log_engine: Engine, store: EventStore
) -> None:
    batch = [NewEvent(Note("a")), NewEvent(Note("b"))]
    barrier = threading.Barrier(6)
    results: list[object] = []

    def send(_: int) -> None:
        barrier.wait(GUARD)
        with Session(log_engine) as s, s.begin():
            results.append(store.append(s, "pay-1", batch).appended)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD)
    assert sorted(results) == [0, 0, 0, 0, 0, 2]  # type: ignore[type-var]
    with Session(log_engine) as s:
        assert [e.event_id for e in store.read_stream(s, "pay-1")] == [e.event_id for e in batch]


def test_missing_partition_is_a_typed_error_and_writes_nothing(cqrs_database_url: str) -> None:
    store = EventStore(registry=registry)
    with isolated_schema(cqrs_database_url, Settings(partitioning="range")) as engine:
        with engine.begin() as conn:
            today = conn.execute(text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
            current = partitions.month_partition_name(date(today.year, today.month, 1))
            conn.execute(text(f'ALTER TABLE events DETACH PARTITION "{current}"'))
        with pytest.raises(PartitionMissing) as info, Session(engine) as s, s.begin():
            store.append(s, "order-1", [Note(1)])
        assert "partitions ensure" in str(info.value)
        with Session(engine) as s:
            assert store.stream_info(s, "order-1") is None
            assert store.read_all(s, after=START) == []
