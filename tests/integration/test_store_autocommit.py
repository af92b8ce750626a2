"""Appending on a connection in autocommit: a one-statement append is its own
transaction (one round trip, the shape of a hand-written autocommit ``INSERT``),
and every step of several statements still runs as one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Connection, Engine, event, text
from test_store_append import Placed, registry

from cqrs import NO_STREAM, EventStore, NewEvent, StreamAppend
from cqrs.errors import AppendRefused, ConcurrencyError


@pytest.fixture
def store() -> EventStore:
    return EventStore(registry=registry)


@pytest.fixture
def auto(log_engine: Engine) -> Iterator[tuple[Connection, list[str]]]:
    """A connection in autocommit, and the statements it sends."""
    seen: list[str] = []
    with log_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        event.listen(conn, "before_cursor_execute", lambda *a: seen.append(a[2].strip()))
        yield conn, seen


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_an_append_commits_by_itself_in_one_statement(
    log_engine: Engine, store: EventStore, auto: tuple[Connection, list[str]]
) -> None:
    conn, seen = auto
    store.append(conn, "order-1", [Placed("order-1", Decimal(1))], expected_version=NO_STREAM)
    assert len(seen) == 1 and not seen[0].upper().startswith("BEGIN")
    assert _count(log_engine, "SELECT count(*) FROM events") == 1  # committed: seen elsewhere
    version = store.read_stream(conn, "order-1")[-1].version
    store.append(conn, "order-1", [Placed("order-1", Decimal(2))], expected_version=version)
    with pytest.raises(ConcurrencyError):  # a stale version is refused, as in a transaction
        store.append(conn, "order-1", [Placed("order-1", Decimal(3))], expected_version=version)
    assert _count(log_engine, "SELECT count(*) FROM events") == 2
    assert [e.version for e in store.read_stream(conn, "order-1")] == [1, 2]


def test_caller_chosen_ids_lock_look_up_and_append_in_one_transaction(
    store: EventStore, auto: tuple[Connection, list[str]]
) -> None:
    conn, seen = auto
    sent = [NewEvent(Placed("order-2", Decimal(n)), event_id=uuid.uuid4()) for n in (1, 2)]
    first = store.append(conn, "order-2", sent)
    assert seen[0] == "BEGIN" and seen[-1] == "COMMIT" and len(seen) > 3
    again = store.append(conn, "order-2", sent)  # a re-send writes nothing
    assert (again.version, again.position) == (first.version, first.position)
    assert len(store.read_stream(conn, "order-2")) == 2


def test_several_streams_one_by_one_are_all_or_nothing(
    log_engine: Engine, store: EventStore, auto: tuple[Connection, list[str]]
) -> None:
    conn, _ = auto
    store.append(conn, "order-3", [Placed("order-3", Decimal(1))])
    appends = [  # caller-chosen ids: the one-stream append each, under a savepoint
        StreamAppend("order-4", [NewEvent(Placed("order-4", Decimal(1)), event_id=uuid.uuid4())]),
        StreamAppend(
            "order-3",
            [NewEvent(Placed("order-3", Decimal(2)), event_id=uuid.uuid4())],
            expected_version=NO_STREAM,
        ),
    ]
    with pytest.raises((ConcurrencyError, AppendRefused)):
        store.append_many(conn, appends)
    assert _count(log_engine, "SELECT count(*) FROM events") == 1
    assert _count(log_engine, "SELECT count(*) FROM streams WHERE stream_id = 'order-4'") == 0


def test_an_import_is_one_transaction(
    log_engine: Engine, store: EventStore, auto: tuple[Connection, list[str]]
) -> None:
    conn, seen = auto
    appends = [StreamAppend(f"order-{n}", [Placed(f"order-{n}", Decimal(n))]) for n in (5, 6)]
    assert store.import_streams(conn, appends) == 2
    assert seen[0] == "BEGIN" and seen[-1] == "COMMIT"
    assert _count(log_engine, "SELECT count(*) FROM events") == 2
