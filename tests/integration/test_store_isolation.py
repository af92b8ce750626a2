"""Appends under REPEATABLE READ: a concurrent change is a typed, retryable conflict."""

from __future__ import annotations

import attrs
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cqrs import (
    NO_STREAM,
    Aggregate,
    CommandBus,
    Event,
    EventRegistry,
    EventStore,
    UnitOfWork,
    applies,
    event,
)
from cqrs.errors import ConcurrencyError, TransactionConflict

registry = EventRegistry()


@event("iso.counter.bumped", registry=registry)
class Bumped(Event):
    by: int


class Counter(Aggregate):
    aggregate_type = "counter"
    value: int = 0

    def bump(self, by: int) -> None:
        self.record(Bumped(by))

    @applies(Bumped)
    def _bumped(self, e: Bumped) -> None:
        self.value += e.by


@attrs.frozen
class Bump:
    counter_id: str
    by: int


def _repeatable_read(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="REPEATABLE READ")


def test_stale_snapshot_append_raises_transaction_conflict(cqrs_engine: Engine) -> None:
    store = EventStore(registry=registry)
    with Session(cqrs_engine) as s, s.begin():
        store.append(s, "counter-a", [Bumped(1)], expected_version=NO_STREAM)
    with Session(_repeatable_read(cqrs_engine)) as stale:
        stale.begin()
        assert store.read_stream(stale, "counter-a")[-1].version == 1  # snapshot taken
        with Session(cqrs_engine) as other, other.begin():
            store.append(other, "counter-a", [Bumped(2)], expected_version=1)
        with pytest.raises(TransactionConflict) as raised:
            store.append(stale, "counter-a", [Bumped(3)], expected_version=1)
        stale.rollback()
    err = raised.value
    assert isinstance(err, ConcurrencyError)
    assert (err.stream_id, err.expected, err.sqlstate) == ("counter-a", 1, "40001")
    assert "CommandBus retries" in str(err)
    with cqrs_engine.connect() as conn:
        assert [e.event.by for e in store.read_stream(conn, "counter-a")] == [1, 2]  # type: ignore[attr-defined]


def test_command_bus_retries_a_serialization_failure(cqrs_engine: Engine) -> None:
    store = EventStore(registry=registry)
    bus = CommandBus(store=store)
    attempts: list[int] = []

    @bus.handles(Bump)
    def bump(cmd: Bump, uow: UnitOfWork) -> int:
        counter = uow.repository(Counter).get(cmd.counter_id)  # snapshot taken here
        attempts.append(counter.version)
        if len(attempts) == 1:  # another writer commits behind this transaction's back
            with Session(cqrs_engine) as other, other.begin():
                store.append(other, "counter-b", [Bumped(100)], expected_version=counter.version)
        counter.bump(cmd.by)
        return counter.value

    with Session(cqrs_engine) as s, s.begin():
        store.append(s, "counter-b", [Bumped(1)], expected_version=NO_STREAM)
    with Session(_repeatable_read(cqrs_engine)) as session:
        value = bus.dispatch(Bump("b", 5), session)
    assert attempts == [1, 2]  # the first run hit 40001 and was re-run on a fresh snapshot
    assert value == 106
    with cqrs_engine.connect() as conn:
        assert [e.version for e in store.read_stream(conn, "counter-b")] == [1, 2, 3]
