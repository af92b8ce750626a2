"""Internal: the command side's scenario: a command round trip through the bus.

Each command loads an aggregate whose stream holds 10 events, checks a rule,
records one event and saves it, in its own transaction. The raw side does the
same job by hand on its own table: one ``SELECT`` of the stream, fold the rows
into a balance, one autocommit ``INSERT`` at the next version (the unique key
is the version check). Every repetition works
on fresh streams, so each load reads exactly 10 events.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import attrs
from sqlalchemy.orm import Session

from benchmarks import raw
from benchmarks.events import EVENT_TYPE, Deposited, deposited, make_store, payload_json
from benchmarks.harness import Context, Sides, scenario
from benchmarks.store import check_raw
from cqrs import Aggregate, CommandBus, UnitOfWork, applies
from cqrs.commands import RetryOnConflict

HISTORY = 10


class Account(Aggregate):
    aggregate_type = "acct"

    balance: Decimal = Decimal(0)
    deposits: int = 0

    def deposit(self, n: int) -> None:
        if self.deposits >= 1_000_000:
            raise ValueError("too many deposits")
        self.record(deposited(self.id, n))

    @applies(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount
        self.deposits += 1


@attrs.frozen
class Deposit:
    account_id: str


def make_bus() -> CommandBus:
    bus = CommandBus(store=make_store(), middleware=[RetryOnConflict()])

    @bus.handles(Deposit)
    def deposit(cmd: Deposit, uow: UnitOfWork) -> None:
        account = uow.repository(Account).get(cmd.account_id)
        account.deposit(account.deposits + 1)

    return bus


@scenario("command round trip", target=0.5, size=500, quick_size=100, unit="commands")
def command_round_trip(ctx: Context) -> Iterator[Sides]:
    """Load an aggregate with 10 events, handle one command, save; one transaction each."""
    store = make_store()
    bus = make_bus()
    conn = ctx.raw_connection(autocommit=True)
    raw.create_tables(conn)
    with ctx.engine.begin() as c:
        for rep in range(ctx.repeat):
            for i in range(ctx.size):
                sid = f"acct-c{rep}-{i}"
                store.append(c, sid, [deposited(sid, n) for n in range(1, HISTORY + 1)])
    raw.copy_batch(
        conn,
        (
            (sid, n, EVENT_TYPE, payload_json(sid, n))
            for rep in range(ctx.repeat)
            for i in range(ctx.size)
            if (sid := f"acct-r{rep}-{i}")
            for n in range(1, HISTORY + 1)
        ),
    )

    def cqrs(rep: int) -> int:
        for i in range(ctx.size):
            with Session(ctx.engine) as session:
                bus.dispatch(Deposit(f"c{rep}-{i}"), session)
        return ctx.size

    def baseline(rep: int) -> int:
        for i in range(ctx.size):
            sid = f"acct-r{rep}-{i}"
            balance, deposits = Decimal(0), 0
            for _, _, data in raw.load(conn, sid):
                balance += Decimal(data["amount"])
                deposits += 1
            if deposits >= 1_000_000:
                raise ValueError("too many deposits")
            raw.append_one(conn, sid, deposits + 1, EVENT_TYPE, payload_json(sid, deposits + 1))
        return ctx.size

    def verify() -> None:
        like = {"p": "acct-c%"}
        want = ctx.repeat * ctx.size * (HISTORY + 1)
        found = ctx.count("SELECT count(*) FROM events WHERE stream_id LIKE :p", like)
        ctx.expect("events in acct-c* streams", want, found)
        found = ctx.count(
            "SELECT count(*) FROM streams WHERE stream_id LIKE :p AND version = :v",
            {**like, "v": HISTORY + 1},
        )
        ctx.expect(f"acct-c* streams at version {HISTORY + 1}", ctx.repeat * ctx.size, found)
        check_raw(ctx, "acct-r", events=want, streams=ctx.repeat * ctx.size)

    with conn:
        yield Sides(cqrs, baseline, verify)
