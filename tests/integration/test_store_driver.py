"""Internal: appends and stream reads on the psycopg connection keep execute's contract.

``cqrs.store.driver`` skips ``Connection.execute`` for the store's own
statements. These tests pin what a caller must not be able to tell apart:
the transaction (autobegin, commit, rollback), event listeners, error types
and a connection lost mid-transaction.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from cqrs import NO_STREAM, Event, EventRegistry, EventStore
from cqrs import event as event_type
from cqrs.errors import ConcurrencyError
from cqrs.store import driver

registry = EventRegistry()


@event_type("driver.noted", registry=registry)
class Noted(Event):
    n: int


@pytest.fixture
def store() -> EventStore:
    return EventStore(registry=registry)


def _versions(engine: Engine, stream_id: str) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT version FROM events WHERE stream_id = :s ORDER BY version"),
                {"s": stream_id},
            ).scalars()
        )


def test_the_append_skips_connection_execute(
    cqrs_engine: Engine, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Connection.execute was called")

    with cqrs_engine.connect() as conn:
        monkeypatch.setattr(Connection, "execute", refuse)
        store.append(conn, "note-1", [Noted(1), Noted(2)], expected_version=NO_STREAM)
        assert [e.version for e in store.read_stream(conn, "note-1")] == [1, 2]
        monkeypatch.undo()
        conn.commit()
    assert _versions(cqrs_engine, "note-1") == [1, 2]


def test_autobegin_commit_and_rollback(cqrs_engine: Engine, store: EventStore) -> None:
    with cqrs_engine.connect() as conn:
        store.append(conn, "note-kept", [Noted(1)])
        assert conn.in_transaction()
        conn.commit()
        store.append(conn, "note-dropped", [Noted(1)])
        conn.rollback()
        store.append(conn, "note-closed", [Noted(1)])  # closed without commit: rolled back
    assert _versions(cqrs_engine, "note-kept") == [1]
    assert _versions(cqrs_engine, "note-dropped") == []
    assert _versions(cqrs_engine, "note-closed") == []


def test_listeners_see_the_store_statements(cqrs_engine: Engine, store: EventStore) -> None:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(cqrs_engine, "before_cursor_execute", record)
    try:
        with cqrs_engine.begin() as conn:
            store.append(conn, "note-seen", [Noted(1)])
            store.read_stream(conn, "note-seen")
    finally:
        event.remove(cqrs_engine, "before_cursor_execute", record)
    assert any("INSERT INTO events" in s for s in seen), seen
    assert any("FROM events" in s and "ORDER BY version" in s for s in seen), seen


def test_typed_errors_still_come_through(cqrs_engine: Engine, store: EventStore) -> None:
    with cqrs_engine.begin() as conn:
        store.append(conn, "note-2", [Noted(1)])
    with cqrs_engine.begin() as conn, pytest.raises(ConcurrencyError):
        store.append(conn, "note-2", [Noted(2)], expected_version=NO_STREAM)
    with cqrs_engine.connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 1"))
        conn.execute(text("SELECT 1"))
        with pytest.raises(DBAPIError) as raised:
            conn.execute(text("SELECT pg_sleep(1)"))  # the transaction is now aborted
        assert raised.value.orig is not None
        with pytest.raises(DBAPIError) as raised:
            store.append(conn, "note-3", [Noted(1)])
        assert getattr(raised.value.orig, "sqlstate", None) == "25P02"  # in failed transaction
        conn.rollback()
        store.append(conn, "note-3", [Noted(1)])
        conn.commit()
    assert _versions(cqrs_engine, "note-3") == [1]


def test_a_connection_killed_mid_transaction_is_invalidated(
    cqrs_engine: Engine, store: EventStore
) -> None:
    with cqrs_engine.connect() as conn:
        store.append(conn, "note-4", [Noted(1)])
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with cqrs_engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(OperationalError) as raised:
            store.append(conn, "note-4", [Noted(2)])
        assert raised.value.connection_invalidated
        assert conn.invalidated
    with cqrs_engine.begin() as conn:  # the pool hands out a live connection again
        store.append(conn, "note-5", [Noted(1)])
    assert _versions(cqrs_engine, "note-4") == []
    assert _versions(cqrs_engine, "note-5") == [1]


def test_a_connection_killed_before_a_read_on_its_own_is_invalidated(
    cqrs_engine: Engine, store: EventStore
) -> None:
    """A read outside a transaction (autocommit for its one statement) on a connection
    the server dropped reports the loss like any other statement, and the connection
    is not reused."""
    with cqrs_engine.begin() as conn:
        store.append(conn, "note-6", [Noted(1)])
    with cqrs_engine.connect() as conn:
        assert len(store.read_stream(conn, "note-6")) == 1
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.rollback()
        with cqrs_engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(OperationalError) as raised:
            store.read_stream(conn, "note-6")
        assert raised.value.connection_invalidated
        assert conn.invalidated
    with cqrs_engine.connect() as conn:  # the pool hands out a live connection again
        assert len(store.read_stream(conn, "note-6")) == 1
        assert not conn.in_transaction()


def test_one_cursor_per_connection_and_none_kept_for_a_big_result(
    cqrs_engine: Engine, store: EventStore
) -> None:
    from cqrs.store import driver

    with cqrs_engine.connect() as conn:
        store.append(conn, "note-c", [Noted(1)], expected_version=NO_STREAM)
        psycopg_conn = conn.connection.driver_connection
        first = driver._cursor(psycopg_conn)  # type: ignore[arg-type]
        store.append(conn, "note-c", [Noted(2)], expected_version=1)
        store.append(conn, "note-c", [Noted(n) for n in range(3, 6)], expected_version=2)
        assert driver._cursor(psycopg_conn) is first  # type: ignore[arg-type]
        # a statement that fails leaves the cursor usable for the next one
        with pytest.raises(ConcurrencyError):
            store.append(conn, "note-c", [Noted(9)], expected_version=1)
        conn.rollback()
        store.append(conn, "note-d", [Noted(n) for n in range(1, 1202)])
        assert [e.version for e in store.read_stream(conn, "note-d")][-1] == 1201
        assert first.closed  # the 1201-row result was not kept alive
        store.append(conn, "note-d", [Noted(1202)], expected_version=1201)
        assert driver._cursor(psycopg_conn) is not first  # type: ignore[arg-type]
        conn.commit()
    assert _versions(cqrs_engine, "note-d")[-1] == 1202


class _Upper(TypeDecorator[str]):
    """A column type that changes values on the way in: its statements must take execute."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else value.upper()


def test_core_statements_go_direct_only_when_psycopg_can_take_the_values_as_they_are(
    cqrs_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = Table(
        "driver_core", MetaData(), Column("k", Text, primary_key=True), Column("v", _Upper)
    )
    plain = insert(table).values(k=bindparam("k"), v=bindparam("w", type_=Text()))
    processed = insert(table).values(k=bindparam("k"), v=bindparam("w"))  # _Upper: processed
    literal_value = insert(table).values(k=bindparam("k"), v="fixed")  # a value of its own
    calls: list[str] = []
    real = Connection.execute

    def counting(self: Connection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(statement))
        return real(self, statement, *args, **kwargs)

    with cqrs_engine.connect() as conn:
        table.create(conn)
        monkeypatch.setattr(Connection, "execute", counting)
        assert driver.execute(conn, plain, {"k": "a", "w": "plain"}) == 1
        assert calls == []  # straight to psycopg
        driver.execute(conn, processed, {"k": "b", "w": "shout"})
        driver.execute(conn, literal_value, {"k": "c"})
        driver.execute(conn, plain, {"k": "d", "w": "x", "extra": 1})
        assert len(calls) == 3  # each of those through execute
        monkeypatch.undo()
        got = dict(conn.execute(select(table.c.k, table.c.v).order_by(table.c.k)).all())
        conn.rollback()
    assert got == {"a": "plain", "b": "SHOUT", "c": "FIXED", "d": "x"}  # Text binds: as given


def test_the_store_cursor_loads_xid8_as_an_int_and_both_paths_agree(
    cqrs_engine: Engine, store: EventStore
) -> None:
    """psycopg has no ``xid8`` loader (text: ``str``, binary: ``bytes``); the store's
    cursor reads it with psycopg's integer loaders. Through ``Connection.execute``
    (event listeners) it comes as text. Both decode to the same positions, which
    are the ids PostgreSQL prints."""
    from cqrs.store import driver, sql

    with cqrs_engine.begin() as conn:
        store.append(conn, "note-x", [Noted(1), Noted(2)])
    params = {"xid": "0", "pos": 0, "lim": 1000}
    with cqrs_engine.connect() as conn:
        binary = driver.rows(conn, sql.READ_ALL, params, binary=True)
        textual = driver.rows(conn, sql.READ_ALL, params)
        printed = conn.execute(
            text("SELECT transaction_id::text FROM events WHERE stream_id = 'note-x'")
        ).scalars()
        ids = {int(x) for x in printed}

    def listener(*args: Any) -> None:
        return None

    event.listen(cqrs_engine, "before_cursor_execute", listener)
    try:
        with cqrs_engine.connect() as conn:
            slow = driver.rows(conn, sql.READ_ALL, params, binary=True)
            slow_read = [e for e in store.read_all(conn) if e.stream_id == "note-x"]
    finally:
        event.remove(cqrs_engine, "before_cursor_execute", listener)
    mine = [r for r in binary if r[1] == "note-x"]
    assert [type(r[4]) for r in mine] == [int, int]
    assert {type(r[4]) for r in textual} == {int}
    assert {type(r[4]) for r in slow} == {str}  # psycopg's default, through execute
    assert {r[4] for r in mine} == ids
    fast_read = [store.decode(r) for r in mine]
    assert [e.position for e in fast_read] == [e.position for e in slow_read]
    assert {e.position.transaction_id for e in fast_read} == ids


_PREPARED_READS = text(
    "SELECT count(*) FROM pg_prepared_statements "
    "WHERE statement LIKE '%FROM events WHERE stream_id = $1%'"
)


def test_a_read_outside_a_transaction_runs_on_its_own(
    cqrs_engine: Engine, store: EventStore
) -> None:
    """``read_stream`` and ``read_all`` on a connection outside a transaction begin none
    (READ COMMITTED): nothing is left open, and the ``ROLLBACK`` a closing connection
    sends (with which psycopg forgets its prepared statements) never happens, so the
    read is prepared from its fifth use on however many blocks it spans."""
    with cqrs_engine.begin() as conn:
        store.append(conn, "note-r", [Noted(1), Noted(2)])
    with cqrs_engine.connect() as conn:
        for _ in range(8):  # psycopg prepares a statement from its 5th or 6th use
            assert [e.version for e in store.read_stream(conn, "note-r")] == [1, 2]
            assert not conn.in_transaction()
            assert [e.stream_id for e in store.read_all(conn)] == ["note-r", "note-r"]
            assert not conn.in_transaction()
            conn.rollback()  # what closing the connection does: nothing to roll back
        assert conn.execute(_PREPARED_READS).scalar_one() == 1
        conn.rollback()
        # Autocommit was for the read only: a write still waits for the commit.
        store.read_stream(conn, "note-r")
        store.append(conn, "note-w", [Noted(1)])
        assert conn.in_transaction()
        conn.rollback()
    assert _versions(cqrs_engine, "note-w") == []


@pytest.mark.parametrize("level", ["REPEATABLE READ", "SERIALIZABLE"])
def test_a_read_under_a_snapshot_level_begins_the_transaction(
    cqrs_engine: Engine, store: EventStore, level: str
) -> None:
    """Under REPEATABLE READ or SERIALIZABLE the caller's next statements share the
    read's snapshot: the read begins the transaction, as ``execute`` would."""
    with cqrs_engine.begin() as conn:
        store.append(conn, "note-s", [Noted(1)])
    with cqrs_engine.connect().execution_options(isolation_level=level) as conn:
        assert len(store.read_stream(conn, "note-s")) == 1
        assert conn.in_transaction()
        with cqrs_engine.begin() as other:
            store.append(other, "note-s", [Noted(2)], expected_version=1)
        assert len(store.read_stream(conn, "note-s")) == 1  # the same snapshot
        assert len(store.read_all(conn)) == 1
        conn.rollback()
        assert len(store.read_stream(conn, "note-s")) == 2


def test_a_read_inside_the_callers_transaction_stays_in_it(
    cqrs_engine: Engine, store: EventStore
) -> None:
    """A read after the caller's own write sees it: same transaction, nothing committed."""
    with cqrs_engine.connect() as conn:
        store.append(conn, "note-t", [Noted(1)])
        assert [e.version for e in store.read_stream(conn, "note-t")] == [1]
        assert conn.in_transaction()
        conn.rollback()
        with pytest.raises(Exception, match="note-t"):
            store.read_stream(conn, "note-t")
    assert _versions(cqrs_engine, "note-t") == []
