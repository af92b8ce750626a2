"""Internal: the command side's scenario: a command round trip through the bus.

Each command loads an aggregate whose stream holds 10 events, checks a rule,
records one event and saves it, in its own transaction. The raw side does the
same SQL by hand with psycopg: read the stream, fold the rows into a balance,
compare-and-set the ``streams`` row, insert the event. Every repetition works
on fresh streams, so each load reads exactly 10 events.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import attrs
from sqlalchemy.orm import Session

from benchmarks import raw
from benchmarks.events import Deposited, deposited, make_store, payload
from benchmarks.harness import Context, Sides, scenario
from cqrs import Aggregate, CommandBus, UnitOfWork, applies
from cqrs.commands import RetryOnConflict

HISTORY = 10
STREAM_TYPE = "acct"


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
    conn = ctx.raw_connection()
    with ctx.engine.begin() as c:
        for side in "cr":
            for rep in range(ctx.repeat):
                for i in range(ctx.size):
                    sid = f"acct-{side}{rep}-{i}"
                    store.append(c, sid, [deposited(sid, n) for n in range(1, HISTORY + 1)])

    def cqrs(rep: int) -> int:
        for i in range(ctx.size):
            with Session(ctx.engine) as session:
                bus.dispatch(Deposit(f"c{rep}-{i}"), session)
        return ctx.size

    def baseline(rep: int) -> int:
        for i in range(ctx.size):
            sid = f"acct-r{rep}-{i}"
            with conn.transaction():
                rows = raw.read_stream(conn, sid)
                balance, deposits = Decimal(0), 0
                for row in rows:
                    balance += Decimal(row[3]["amount"])
                    deposits += 1
                if deposits >= 1_000_000:
                    raise ValueError("too many deposits")
                raw.append_expected(
                    conn, sid, STREAM_TYPE, rows[-1][1], [payload(sid, deposits + 1)]
                )
        return ctx.size

    def verify() -> None:
        for side in "cr":
            like = {"p": f"acct-{side}%"}
            want = ctx.repeat * ctx.size * (HISTORY + 1)
            found = ctx.count("SELECT count(*) FROM events WHERE stream_id LIKE :p", like)
            ctx.expect(f"events in acct-{side}* streams", want, found)
            found = ctx.count(
                "SELECT count(*) FROM streams WHERE stream_id LIKE :p AND version = :v",
                {**like, "v": HISTORY + 1},
            )
            ctx.expect(
                f"acct-{side}* streams at version {HISTORY + 1}", ctx.repeat * ctx.size, found
            )

    with conn:
        yield Sides(cqrs, baseline, verify)
