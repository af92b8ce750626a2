"""The log's ordering contract, one transaction shape at a time: a stream's events are
read in version order however the writing transactions interleave.

A transaction takes its id at its first write. In each test one transaction
(T2) writes something first, then another transaction appends to stream S and
commits, and only then T2 appends the next version of S. Without the check on
``streams.last_xid`` T2's version would carry the lower transaction id and be
read before the version it follows; with it, T2's append is refused with
``AppendOrderConflict`` and the retry in a fresh transaction lands in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from cqrs import (
    ANY,
    NO_STREAM,
    START,
    STREAM_EXISTS,
    Aggregate,
    CommandBus,
    Event,
    EventRegistry,
    EventStore,
    RecordedEvent,
    UnitOfWork,
    applies,
    event,
    run_in_transaction,
)
from cqrs.errors import AppendOrderConflict, ConcurrencyError
from cqrs.store.expected import Expected

registry = EventRegistry()


@event("order.contract.deposited", registry=registry)
class Deposited(Event):
    amount: int


class Account(Aggregate):
    aggregate_type = "acct"
    balance: int = 0

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount))

    @applies(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount


@attrs.frozen
class Deposit:
    account_id: str
    amount: int
    command_id: str | None = None


@attrs.frozen
class Transfer:
    source: str
    target: str
    amount: int


@pytest.fixture
def store() -> EventStore:
    return EventStore(registry=registry)


def read_everything(engine: Engine, store: EventStore) -> list[RecordedEvent[Event]]:
    """The whole log through ``read_all``, up to the head (waiting out a brief holder)."""
    out: list[RecordedEvent[Event]] = []
    after = START
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        head = store.head(conn)
        conn.rollback()
        while after < head and time.monotonic() < deadline:
            page = store.read_all(conn, after=after, limit=100)
            conn.rollback()
            out.extend(page)
            after = page[-1].position if page else after
            if not page:
                time.sleep(0.01)
    assert after >= head, f"read_all did not reach the head {head} (at {after})"
    return out


def versions_in_read_order(events: Sequence[RecordedEvent[Event]], stream_id: str) -> list[int]:
    return [e.version for e in events if e.stream_id == stream_id]


def commit_append(engine: Engine, store: EventStore, stream_id: str, expected: Any) -> None:
    """Another transaction appends to ``stream_id`` and commits, then and there."""
    with Session(engine) as other, other.begin():
        store.append(other, stream_id, [Deposited(100)], expected_version=expected)


@pytest.fixture
def seeded(log_engine: Engine, store: EventStore) -> Iterator[Engine]:
    """Stream ``acct-s`` at version 1."""
    with Session(log_engine) as s, s.begin():
        store.append(s, "acct-s", [Deposited(1)], expected_version=NO_STREAM)
    yield log_engine


EXPECTATIONS: dict[str, Expected] = {"exact": 2, "any": ANY, "exists": STREAM_EXISTS}


@pytest.mark.parametrize("mode", sorted(EXPECTATIONS))
def test_an_append_from_a_transaction_that_wrote_first_is_refused(
    seeded: Engine, store: EventStore, mode: str
) -> None:
    """The issue's reproduction, in every expected-version mode and both layouts."""
    with Session(seeded) as t2:  # closed (rolled back) however the test ends
        t2.begin()
        store.append(t2, "acct-other", [Deposited(0)])  # T2 takes its transaction id here
        commit_append(seeded, store, "acct-s", 1)  # version 2, a newer transaction id
        with pytest.raises(AppendOrderConflict) as refused:
            store.append(t2, "acct-s", [Deposited(3)], expected_version=EXPECTATIONS[mode])
        assert isinstance(refused.value, ConcurrencyError)  # retried by RetryOnConflict
        assert refused.value.code == "cqrs-append-order"
        assert refused.value.transaction_id < refused.value.last_transaction_id
        assert "fresh transaction" in str(refused.value)
        # The refused append wrote nothing; the stream is as the other writer left it.
        assert store.stream_info(t2, "acct-s").version == 2  # type: ignore[union-attr]

    # The same work in a fresh transaction gets a newer id and lands after version 2.
    with Session(seeded) as retry, retry.begin():
        store.append(retry, "acct-other", [Deposited(0)])
        store.append(retry, "acct-s", [Deposited(3)], expected_version=EXPECTATIONS[mode])
    events = read_everything(seeded, store)
    assert versions_in_read_order(events, "acct-s") == [1, 2, 3]


def test_an_append_without_an_earlier_write_is_not_refused(
    seeded: Engine, store: EventStore
) -> None:
    """A transaction that only read before appending takes its id at the append."""
    with Session(seeded) as t2:
        t2.begin()
        assert store.read_stream(t2, "acct-s")[-1].version == 1
        commit_append(seeded, store, "acct-s", 1)
        store.append(t2, "acct-s", [Deposited(3)], expected_version=2)
        t2.commit()
    assert versions_in_read_order(read_everything(seeded, store), "acct-s") == [1, 2, 3]


def test_appends_of_one_transaction_to_one_stream_stay_allowed(
    seeded: Engine, store: EventStore
) -> None:
    with Session(seeded) as s, s.begin():
        store.append(s, "acct-s", [Deposited(2)], expected_version=1)
        store.append(s, "acct-s", [Deposited(3)], expected_version=2)
        store.append(s, "acct-s", [Deposited(4)])
    assert versions_in_read_order(read_everything(seeded, store), "acct-s") == [1, 2, 3, 4]


def test_the_callers_own_write_first_then_a_command(seeded: Engine, store: EventStore) -> None:
    """Shape (a): the service writes its own table, then dispatches in its transaction.

    The bus runs in a SAVEPOINT of the caller's transaction, where a retry cannot
    help, so it raises at once; ``run_in_transaction`` retries the whole thing.
    """
    with seeded.begin() as conn:
        conn.execute(text("CREATE TABLE audit (note text NOT NULL)"))
    runs: list[int] = []
    bus = CommandBus(store=store)

    @bus.handles(Deposit)
    def deposit(cmd: Deposit, uow: UnitOfWork) -> None:
        runs.append(1)
        uow.repository(Account).get(cmd.account_id).deposit(cmd.amount)

    with pytest.raises(AppendOrderConflict), Session(seeded) as session, session.begin():
        session.execute(text("INSERT INTO audit VALUES ('first try')"))
        commit_append(seeded, store, "acct-s", 1)
        bus.dispatch(Deposit("s", 3), session)  # the caller's transaction rolls back
    assert runs == [1]  # not retried inside the caller's transaction

    interfere = [True]

    def work(session: Session) -> None:
        session.execute(text("INSERT INTO audit VALUES ('service row')"))
        if interfere:
            interfere.pop()
            commit_append(seeded, store, "acct-s", STREAM_EXISTS)
        bus.dispatch(Deposit("s", 3), session)

    run_in_transaction(sessionmaker(seeded), work)
    events = read_everything(seeded, store)
    assert versions_in_read_order(events, "acct-s") == [1, 2, 3, 4]
    assert [type(e.event) for e in events] == [Deposited] * 4
    with seeded.connect() as conn:
        notes = conn.execute(text("SELECT note FROM audit")).scalars().all()
    assert notes == ["service row"]  # the refused run left nothing behind


def test_an_idempotent_command_claims_its_id_before_the_load(
    seeded: Engine, store: EventStore
) -> None:
    """Shape (b): the bus writes ``processed_commands`` first, then the handler loads."""
    bus = CommandBus(store=store)
    attempts: list[int] = []

    @bus.handles(Deposit)
    def deposit(cmd: Deposit, uow: UnitOfWork) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            commit_append(seeded, store, "acct-s", 1)  # after the claim, before the load
        uow.repository(Account).get(cmd.account_id).deposit(cmd.amount)

    with Session(seeded) as session:
        outcome = bus.execute(Deposit("s", 3, command_id="cmd-1"), session)
    assert outcome.attempts == 2 and len(attempts) == 2
    assert [e.version for e in outcome.recorded] == [3]
    assert versions_in_read_order(read_everything(seeded, store), "acct-s") == [1, 2, 3]
    with Session(seeded) as session:
        again = bus.execute(Deposit("s", 3, command_id="cmd-1"), session)
    assert again.replayed and len(attempts) == 2
    with seeded.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM processed_commands")).scalar() == 1


class PausingStore(EventStore):
    """An ``EventStore`` that runs ``between`` once, right after appending to ``after``
    (or, for ``append_many``, right before a call that includes ``after``)."""

    def __init__(self, after: str, between: Any) -> None:
        super().__init__(registry=registry)
        self.after, self.between = after, between

    def append(self, executor: Any, stream_id: str, events: Any, **kw: Any) -> Any:
        result = super().append(executor, stream_id, events, **kw)
        if stream_id == self.after and self.between is not None:
            between, self.between = self.between, None
            between()
        return result

    def append_many(self, executor: Any, appends: Any, **kw: Any) -> Any:
        if self.between is not None and any(a.stream_id == self.after for a in appends):
            between, self.between = self.between, None
            between()
        return super().append_many(executor, appends, **kw)


def test_a_handler_touching_two_aggregates(seeded: Engine, store: EventStore) -> None:
    """Shape (c): the unit of work writes both aggregates in one statement
    (``append_many``); another writer commits to ``acct-s`` after the load."""
    with Session(seeded) as s, s.begin():
        store.append(s, "acct-a", [Deposited(50)], expected_version=NO_STREAM)
    paused = PausingStore("acct-a", lambda: commit_append(seeded, store, "acct-s", 1))
    bus = CommandBus(store=paused)

    @bus.handles(Transfer)
    def transfer(cmd: Transfer, uow: UnitOfWork) -> None:
        accounts = uow.repository(Account)
        accounts.get(cmd.source).deposit(-cmd.amount)
        accounts.get(cmd.target).deposit(cmd.amount)

    with Session(seeded) as session:
        outcome = bus.execute(Transfer("a", "s", 10), session)
    assert outcome.attempts == 2
    events = read_everything(seeded, store)
    assert versions_in_read_order(events, "acct-s") == [1, 2, 3]
    assert versions_in_read_order(events, "acct-a") == [1, 2]
    # One transaction's events are contiguous in the log.
    last_two = [(e.stream_id, e.version) for e in events[-2:]]
    assert last_two == [("acct-a", 2), ("acct-s", 3)]


def test_a_wrong_expected_version_is_still_a_plain_concurrency_error(
    seeded: Engine, store: EventStore
) -> None:
    with Session(seeded) as t2:
        t2.begin()
        store.append(t2, "acct-other", [Deposited(0)])
        commit_append(seeded, store, "acct-s", 1)
        with pytest.raises(ConcurrencyError) as wrong:
            store.append(t2, "acct-s", [Deposited(3)], expected_version=1)
        assert type(wrong.value) is ConcurrencyError and wrong.value.actual == 2
