"""Set-based updates (``writes._UpdatePlan``) give exactly the rows per-event application gives.

A batch's updates go out as ``UPDATE ... FROM jsonb_to_recordset``: summed
increments per row where that is exact, else rounds that apply each row's
writes in order. Each test applies one random log twice: as one batch, and
event by event (a run of one write is the old one-statement-per-row path),
into two copies of the read model, and compares them row for row.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Float, Integer, MetaData, Numeric, Table, Text, event, select

from cqrs import Event, EventRegistry
from cqrs import event as declare
from cqrs.events.model import Position, RecordedEvent
from cqrs.projections.declarative import Projection
from cqrs.projections.expr import E

registry = EventRegistry()


@declare("counter.opened", registry=registry)
class Opened(Event):
    key: str
    label: str


@declare("counter.added", registry=registry)
class Added(Event):
    key: str
    amount: Decimal
    label: str


@declare("counter.took", registry=registry)
class Took(Event):
    key: str
    amount: Decimal


@declare("counter.scaled", registry=registry)
class Scaled(Event):
    key: str


@declare("counter.reset", registry=registry)
class Reset(Event):
    key: str


@declare("counter.measured", registry=registry)
class Measured(Event):
    key: str
    x: float


@declare("counter.closed", registry=registry)
class Closed(Event):
    key: str


def _table(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("key", Text, primary_key=True),
        Column("n", Integer, nullable=True),
        Column("total", Numeric(12, 2), nullable=True),
        Column("f", Float, nullable=False),
        Column("label", Text, nullable=False),
    )


BATCH, ONE_BY_ONE = _table("counters_batch"), _table("counters_each")


def _projection() -> Projection:
    t = BATCH
    p = Projection("counters", t, registry=registry)
    p.on(Opened).upsert(key=E.key, n=0, total=Decimal(0), f=0.0, label=E.label)
    # the docs' idiom, with a plain value set beside the increments
    p.on(Added).update(key=E.key, n=t.c.n + 1, total=t.c.total + E.amount, label=E.label)
    p.on(Took).update(key=E.key, total=t.c.total - E.amount)  # not "col + delta": rounds
    p.on(Scaled).update(key=E.key, n=t.c.n * 2)
    p.on(Reset).update(key=E.key, n=0)
    p.on(Measured).update(key=E.key, f=t.c.f + E.x)  # float: summing would round: rounds
    p.on(Closed).delete(key=E.key)
    return p


def _recorded(events: list[Event]) -> list[RecordedEvent[Event]]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        RecordedEvent(uuid.uuid4(), e.key, "counter", n, Position(1, n), e.event_type, 1, e, {}, at)
        for n, e in enumerate(events, start=1)
    ]


def _event(rng: random.Random, n: int) -> Event:
    key = rng.choice(["a", "b", "c", "d"])
    kind = rng.choice(KINDS)
    amount = Decimal(rng.randint(-500, 900)) / 100
    if kind == "open":
        return Opened(key, f"l{n}")
    if kind in ("add", "add+"):
        return Added(key, amount if kind == "add" else abs(amount), f"l{n}")
    if kind == "took":
        return Took(key, amount)
    if kind == "scale":
        return Scaled(key)
    if kind == "reset":
        return Reset(key)
    if kind == "measure":
        return Measured(key, rng.random() / 3)
    return Closed(key)


KINDS = ["open", "open", "add", "add", "add+", "took", "scale", "reset", "measure", "close"]


def _log(seed: int, size: int) -> list[Event]:
    rng = random.Random(seed)
    return [_event(rng, n) for n in range(size)]


@contextmanager
def _updates(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE COUNTERS"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _apply_both(engine: Engine, events: list[Event]) -> tuple[list[Any], list[Any], int]:
    projection = _projection()
    recorded = _recorded(events)
    with engine.begin() as conn:
        BATCH.create(conn)
        ONE_BY_ONE.create(conn)
    with _updates(engine) as statements, engine.begin() as conn:
        projection.apply(conn, recorded)
    with engine.begin() as conn:
        for r in recorded:
            projection.apply(conn, [r], table_map={BATCH: ONE_BY_ONE})
    with engine.connect() as conn:
        got = [tuple(r) for r in conn.execute(select(BATCH).order_by(BATCH.c.key))]
        want = [tuple(r) for r in conn.execute(select(ONE_BY_ONE).order_by(ONE_BY_ONE.c.key))]
    return got, want, len(statements)


def test_the_counter_idiom_is_one_statement_a_run(cqrs_engine: Engine) -> None:
    events: list[Event] = [Opened(k, "x") for k in "abcd"]
    events += [Added(k, Decimal("1.25"), f"l{n}") for n in range(50) for k in "abcd"]
    got, want, statements = _apply_both(cqrs_engine, events)
    assert got == want
    assert got[0] == ("a", 50, Decimal("62.50"), 0.0, "l49")
    assert statements == 1


def test_rows_created_earlier_in_the_batch_and_mixed_updates(cqrs_engine: Engine) -> None:
    a = Decimal("1.10")
    events: list[Event] = [Added("a", a, "early"), Opened("a", "x"), Added("a", a, "1")]
    events += [Added("a", a, "2"), Reset("a"), Added("a", a, "3"), Scaled("a")]
    events += [Added("a", a, "4"), Opened("b", "y"), Added("b", a, "5"), Added("a", a, "6")]
    got, want, _ = _apply_both(cqrs_engine, events)
    assert got == want
    assert got == [("a", 4, Decimal("5.50"), 0.0, "6"), ("b", 1, Decimal("1.10"), 0.0, "5")]


@pytest.mark.parametrize("seed", range(6))
def test_random_logs_match_per_event_application(cqrs_engine: Engine, seed: int) -> None:
    events = _log(seed, 400)
    got, want, _ = _apply_both(cqrs_engine, events)
    assert got == want


def test_mixed_signs_and_nulls_fall_back_to_exact_rounds(cqrs_engine: Engine) -> None:
    events: list[Event] = [Opened("a", "x"), Opened("b", "y")]
    events += [Added("a", Decimal(d), "l") for d in ("5", "-3", "0.01", "-9.99")]
    events += [Added("b", Decimal("1"), "m"), Reset("b"), Added("b", Decimal("2"), "n")]
    got, want, _ = _apply_both(cqrs_engine, events)
    assert got == want
    assert got[0][:3] == ("a", 4, Decimal("-7.98"))


@pytest.mark.parametrize(
    ("amount", "times", "total", "statements"),
    [
        # 1.250 is 1.25 spelled with three places: it fits numeric(_, 2), so the run sums
        ("1.250", 4, "5.00", 1),
        # each 0.005 rounds on its own (0.01, 0.02, 0.03); their sum, 0.015, would round once
        ("0.005", 3, "0.03", 3),
    ],
)
def test_increments_are_summed_only_when_each_fits_the_column_scale(
    cqrs_engine: Engine, amount: str, times: int, total: str, statements: int
) -> None:
    events: list[Event] = [Opened("a", "x")]
    events += [Added("a", Decimal(amount), f"l{n}") for n in range(times)]
    got, want, sent = _apply_both(cqrs_engine, events)
    assert got == want and got[0][:3] == ("a", times, Decimal(total))
    assert sent == statements
