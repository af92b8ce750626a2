"""The command bus when PostgreSQL goes away: typed errors, safe retries, lost COMMITs resolved.

The bus's connection is terminated with ``pg_terminate_backend`` from another
connection (SQLSTATE 57P01, what an administrator shutdown or a failover does to
it) at chosen moments: in the middle of the handler, and between the handler's
end and COMMIT (a session ``before_commit`` hook). A URL pointing at a closed
port stands for a server that is down.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from commands_domain import Counter, Order, PlaceOrder, Receipt
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cqrs import CommandBus, UnitOfWork
from cqrs.commands import LoggingMiddleware, RetryOnConflict, RetryOnUnavailable
from cqrs.commands.unavailable import is_unavailable, unavailable
from cqrs.errors import (
    CommitOutcomeUnknown,
    ConcurrencyError,
    DatabaseUnavailable,
    StreamAlreadyExists,
)


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _terminate(engine: Engine, pid: int) -> None:
    """``pg_terminate_backend(pid)`` from another connection; returns once it is gone."""
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 30000)"), {"pid": pid}).scalar()


def _pid(session: Session) -> int:
    return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


class Bus:
    """A bus whose ``PlaceOrder`` handler runs ``hook(session, run)`` mid-command."""

    def __init__(self, hook: Callable[[Session, int], None] | None = None, **kw: Any) -> None:
        self.runs = 0
        self.sleeps: list[float] = []
        self.bus = CommandBus(**kw)

        @self.bus.handles(PlaceOrder)
        def place(cmd: PlaceOrder, uow: UnitOfWork) -> Receipt:
            self.runs += 1
            order = uow.repository(Order).create(cmd.order_id)
            if hook is not None:
                hook(uow.session, self.runs)
            order.place(cmd.customer_id, cmd.total)
            return Receipt(order.id, order.total)

    def execute(self, session: Session, command: Any, **kw: Any) -> Any:
        return self.bus.execute(command, session, sleep=self.sleeps.append, **kw)


def _kill_first_run(engine: Engine) -> Callable[[Session, int], None]:
    def hook(session: Session, run: int) -> None:
        if run == 1:
            _terminate(engine, _pid(session))

    return hook


def _rows(engine: Engine) -> tuple[int, int, int]:
    return (
        _count(engine, "SELECT count(*) FROM processed_commands"),
        _count(engine, "SELECT count(*) FROM events"),
        _count(engine, "SELECT count(*) FROM streams"),
    )


# -- the connection dies in the middle of the handler ---------------------------------


@pytest.mark.parametrize("command_id", ["cmd-1", None], ids=["idempotent", "no-command-id"])
def test_connection_terminated_mid_command_is_retried_once_applied(
    cqrs_engine: Engine, command_id: str | None
) -> None:
    bus = Bus(_kill_first_run(cqrs_engine))
    with Session(cqrs_engine) as session:
        outcome = bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)), command_id=command_id)
    assert outcome.result == Receipt("o-1", Decimal(5))
    assert (outcome.attempts, outcome.replayed, bus.runs, len(bus.sleeps)) == (2, False, 2, 1)
    assert len(outcome.recorded) == 1
    assert _rows(cqrs_engine) == (1 if command_id else 0, 1, 1)


def test_terminated_inside_the_callers_transaction_is_not_retried(cqrs_engine: Engine) -> None:
    bus = Bus(_kill_first_run(cqrs_engine))
    with Session(cqrs_engine) as session:
        session.begin()
        session.execute(text("SELECT 1"))
        with pytest.raises(DatabaseUnavailable) as info:
            bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)), command_id="cmd-1")
        session.rollback()
    err = info.value
    assert not isinstance(err, CommitOutcomeUnknown)
    assert isinstance(err.__cause__, OperationalError)
    # psycopg 3.2.1 (the floor) reports this termination without its SQLSTATE; newer
    # releases say 57P01. Either way it is typed, with the driver's error as its cause.
    assert err.sqlstate in ("57P01", None) and err.code == "cqrs-database-unavailable"
    assert "terminating connection" in str(err.__cause__)
    assert "run the command again" in str(err)
    assert (bus.runs, bus.sleeps) == (1, [])
    assert _rows(cqrs_engine) == (0, 0, 0)


# -- the connection dies between the handler's end and COMMIT --------------------------


def _kill_before_commit(engine: Engine, session: Session, times: int = 1) -> list[int]:
    killed: list[int] = []

    @event.listens_for(session, "before_commit")
    def kill(s: Session) -> None:
        if len(killed) < times:
            pid = _pid(s)
            killed.append(pid)
            _terminate(engine, pid)

    return killed


def test_commit_killed_with_a_command_id_is_resolved_then_retried(cqrs_engine: Engine) -> None:
    bus = Bus()
    with Session(cqrs_engine) as session:
        killed = _kill_before_commit(cqrs_engine, session)
        outcome = bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)), command_id="cmd-1")
    assert len(killed) == 1
    assert outcome.result == Receipt("o-1", Decimal(5))
    assert (outcome.attempts, outcome.replayed, bus.runs) == (2, False, 2)
    assert _rows(cqrs_engine) == (1, 1, 1)
    with Session(cqrs_engine) as session:  # a repeat answers the stored result
        again = bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)), command_id="cmd-1")
    assert (again.result, again.replayed, bus.runs) == (Receipt("o-1", Decimal(5)), True, 2)


def test_commit_killed_without_a_command_id_is_reported_unknown(cqrs_engine: Engine) -> None:
    bus = Bus()
    with Session(cqrs_engine) as session:
        _kill_before_commit(cqrs_engine, session)
        with pytest.raises(CommitOutcomeUnknown) as info:
            bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)))
    err = info.value
    assert isinstance(err, DatabaseUnavailable) and err.code == "cqrs-commit-unknown"
    assert isinstance(err.__cause__, OperationalError)
    assert "command_id" in str(err)
    assert (bus.runs, bus.sleeps) == (1, [])
    assert _rows(cqrs_engine) == (0, 0, 0)  # here it did not commit; the bus cannot know


def test_commit_that_went_through_but_was_not_acknowledged(
    cqrs_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server committed, then the connection died before the client heard so
    (the driver's COMMIT returns, then raises what a dropped socket raises)."""
    bus = Bus()
    real_commit = cqrs_engine.dialect.do_commit
    fired: list[bool] = []

    def commit_then_lose_the_connection(dbapi_connection: Any) -> None:
        real_commit(dbapi_connection)
        if not fired:
            fired.append(True)
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(cqrs_engine.dialect, "do_commit", commit_then_lose_the_connection)
    with Session(cqrs_engine) as session:
        outcome = bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)), command_id="cmd-1")
    assert fired == [True]
    assert outcome.result == Receipt("o-1", Decimal(5))
    assert (outcome.replayed, outcome.attempts, bus.runs) == (False, 2, 1)  # not run again
    assert [e.stream_id for e in outcome.recorded] == ["order-o-1"]
    assert _rows(cqrs_engine) == (1, 1, 1)


# -- the server cannot be reached ---------------------------------------------------------


@pytest.fixture
def closed_port_engine(cqrs_engine: Engine) -> Iterator[Engine]:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # over TCP even when the test server is reached through a socket folder (?host=...)
    url = cqrs_engine.url.difference_update_query(["host"]).set(host="127.0.0.1", port=port)
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("command_id", ["cmd-1", None], ids=["idempotent", "no-command-id"])
def test_connection_refused_is_retried_then_raised_typed(
    closed_port_engine: Engine, command_id: str | None
) -> None:
    bus = Bus(middleware=[RetryOnUnavailable(attempts=3, base_delay=0.01), RetryOnConflict()])
    with Session(closed_port_engine) as session, pytest.raises(DatabaseUnavailable) as info:
        bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)), command_id=command_id)
    err = info.value
    assert isinstance(err.__cause__, OperationalError)
    assert "refused" in str(err.__cause__).lower()
    assert not isinstance(err, CommitOutcomeUnknown)
    assert (bus.runs, len(bus.sleeps)) == (0, 2)
    assert all(0 <= s <= 0.02 for s in bus.sleeps)


def test_retries_stop_at_the_time_bound(closed_port_engine: Engine) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 4.0  # every look at the clock: four seconds later
        return now[0]

    retry = RetryOnUnavailable(attempts=100, base_delay=0.01, max_seconds=10, clock=clock)
    bus = Bus(middleware=[LoggingMiddleware(), retry])
    with Session(closed_port_engine) as session, pytest.raises(DatabaseUnavailable):
        bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)), command_id="cmd-1")
    # deadline 4 + 10 = 14; after runs at 8 and 12 it waits, at 16 it gives up
    assert len(bus.sleeps) == 2


def test_default_middleware_retries_outages() -> None:
    assert any(isinstance(m, RetryOnUnavailable) for m in CommandBus().middleware)


# -- "already exists" is said at once ------------------------------------------------------


def test_creating_an_existing_aggregate_is_not_retried(cqrs_engine: Engine) -> None:
    bus = Bus()
    with Session(cqrs_engine) as session:
        bus.execute(session, PlaceOrder("o-1", "c-1", Decimal(5)))
        with pytest.raises(StreamAlreadyExists) as info:
            bus.execute(session, PlaceOrder("o-1", "c-2", Decimal(7)))
    err = info.value
    assert isinstance(err, ConcurrencyError)
    assert (err.stream_id, err.actual, err.code) == ("order-o-1", 1, "cqrs-stream-exists")
    assert "already exists" in str(err) and "get()" in str(err)
    assert (bus.runs, bus.sleeps) == (2, [])  # one run each: no retries


def test_get_or_none_then_create_racing_another_creator_is_retried(cqrs_engine: Engine) -> None:
    bus = CommandBus()
    runs = 0

    @bus.handles(PlaceOrder)
    def upsert(cmd: PlaceOrder, uow: UnitOfWork) -> int:
        nonlocal runs
        runs += 1
        counters = uow.repository(Counter)
        counter = counters.get_or_none(cmd.order_id)
        if counter is None:
            if runs == 1:  # another writer creates it after we looked
                with Session(cqrs_engine) as other, other.begin():
                    rival = Counter(cmd.order_id)
                    rival.increment(10)
                    from cqrs import Repository

                    Repository(Counter, other).save(rival)
            counter = counters.create(cmd.order_id)
        counter.increment(1)
        return counter.count

    with Session(cqrs_engine) as session:
        outcome = bus.execute(PlaceOrder("k-1", "c-1", Decimal(1)), session)
    assert (outcome.result, outcome.attempts, runs) == (11, 2, 2)


# -- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sqlstate", "outage"),
    [("57P01", True), ("57P02", True), ("57P03", True), ("53300", True), ("08006", True),
     ("08001", True), ("23505", False), ("40001", False), ("22P02", False)],
)  # fmt: skip
def test_sqlstates_that_mean_the_database_is_unavailable(sqlstate: str, outage: bool) -> None:
    orig = psycopg.errors.lookup(sqlstate)("boom")
    err = OperationalError("SELECT 1", {}, orig)
    assert is_unavailable(err) is outage
    mapped = unavailable(err, committing=False)
    assert (mapped is not None) is outage
    if mapped is not None:
        assert mapped.sqlstate == sqlstate and sqlstate in str(mapped)


def test_errors_that_are_not_outages_pass_through(cqrs_engine: Engine) -> None:
    assert unavailable(ValueError("x"), committing=False) is None
    bus = CommandBus()

    @bus.handles(PlaceOrder)
    def bad_sql(cmd: PlaceOrder, uow: UnitOfWork) -> None:
        uow.session.execute(text("SELECT 1/0"))

    with Session(cqrs_engine) as session, pytest.raises(Exception) as info:
        bus.execute(PlaceOrder("o-1", "c-1", Decimal(1)), session)
    assert not isinstance(info.value, DatabaseUnavailable)
    assert "division by zero" in str(info.value)


# -- the same under asyncio -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_asyncio_connection_refused_is_retried_then_typed(
    closed_port_engine: Engine,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from cqrs.commands.asyncio import dispatch_async

    url = closed_port_engine.url.render_as_string(hide_password=False)
    engine = create_async_engine(url)
    bus = Bus(middleware=[RetryOnUnavailable(attempts=2, base_delay=0.01)])
    try:
        async with AsyncSession(engine) as session:
            with pytest.raises(DatabaseUnavailable) as info:
                await dispatch_async(
                    bus.bus, PlaceOrder("o-1", "c-1", Decimal(5)), session, command_id="cmd-1"
                )
    finally:
        await engine.dispose()
    assert isinstance(info.value.__cause__, OperationalError)
    assert bus.runs == 0
