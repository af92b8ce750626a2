"""Projection definitions without a database: expressions, rules, batching into statements."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, Table, Text
from sqlalchemy.dialects import postgresql

from cqrs.errors import ProjectionError
from cqrs.events import Event, EventRegistry, Position, RecordedEvent, event
from cqrs.projections import E, FailurePolicy, Projection, ProjectionContext
from cqrs.projections.writes import BatchWriter, Write

REG = EventRegistry()


@event("pju.placed", registry=REG, aliases=("pju.placed.v0",))
class Placed(Event):
    order_id: str
    total: Decimal


@event("pju.added", registry=REG)
class Added(Event):
    order_id: str
    amount: Decimal


@event("pju.other", registry=REG)
class Other(Event):
    order_id: str


summary = Table(
    "summary",
    MetaData(),
    Column("order_id", Text, primary_key=True),
    Column("total", Numeric(12, 2)),
    Column("items", Integer, default=0),
    Column("version", Integer),
)


def recorded(e: Event, stream_id: str = "order-1", version: int = 1) -> RecordedEvent[Event]:
    return RecordedEvent(
        uuid.uuid4(), stream_id, "order", version, Position(10, version), e.event_type, 1, e,
        {"tenant": "t-1"}, datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip


class FakeConnection:
    """Records what the writer sends; enough of a ``Connection`` for ``BatchWriter``."""

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.statements: list[Any] = []

    def execute(self, statement: Any, params: Any = None) -> Any:
        self.sent.append((str(statement.compile(dialect=self.dialect)), params))
        self.statements.append(statement)
        return SimpleNamespace(rowcount=1)  # what the writer reads of a CursorResult


def test_expressions_read_event_fields_envelope_and_metadata() -> None:
    r = recorded(Placed("order-1", Decimal("2.5")), version=3)
    assert E.order_id.evaluate(r) == "order-1"
    assert E.stream_id.evaluate(r) == "order-1" and E.version.evaluate(r) == 3
    assert (E.total * 2 + 1).evaluate(r) == Decimal("6.0")
    assert (10 - E.version).evaluate(r) == 7
    assert (-E.version).evaluate(r) == -3
    assert E.meta("tenant").evaluate(r) == "t-1"
    assert E.meta("nope", "d").evaluate(r) == "d"
    assert E(lambda x: x.stream_id.upper()).evaluate(r) == "ORDER-1"
    assert E.const(5).evaluate(r) == 5
    with pytest.raises(ProjectionError, match="no field 'missing'"):
        E.missing.evaluate(r)


@event("pju.versioned", registry=REG)
class Versioned(Event):
    """An event with a field named like an envelope attribute: the field wins."""

    order_id: str
    version: int


def test_one_field_expression_reads_each_event_class_from_its_own_source() -> None:
    # E.version is looked up once per event class: from the event where the class
    # has the field, from the envelope where it cannot have it, every time after too.
    expr = E.version
    placed = [recorded(Placed("o", Decimal(1)), version=v) for v in (3, 4)]
    versioned = [recorded(Versioned("o", 40 + v), version=v) for v in (1, 2)]
    for _ in range(2):
        assert [expr.evaluate(r) for r in placed] == [3, 4]
        assert [expr.evaluate(r) for r in versioned] == [41, 42]
    missing = E.missing
    for _ in range(2):  # the second time from the envelope directly: the same error
        with pytest.raises(ProjectionError, match="no field 'missing'"):
            missing.evaluate(placed[0])


def test_event_types_include_aliases_and_subclass_handlers() -> None:
    p = Projection("p", summary, registry=REG)
    p.on(Placed).upsert(order_id=E.order_id, total=E.total)
    assert p.event_types() == ["pju.placed", "pju.placed.v0"]
    p.on(Added).update(key=E.order_id, total=summary.c.total + E.amount)
    assert p.event_types() == ["pju.added", "pju.placed", "pju.placed.v0"]
    catch_all = Projection("all", summary, registry=REG)

    @catch_all.on(Event)
    def _(e: RecordedEvent[Event], ctx: ProjectionContext) -> None:
        ctx.update(summary, e.stream_id, version=e.version)

    assert catch_all.event_types() is None
    assert catch_all.tables == (summary,)


def test_a_batch_becomes_one_statement_per_run_and_upserts_keep_the_last_per_key() -> None:
    p = Projection("p", summary, registry=REG)
    p.on(Placed).upsert(order_id=E.order_id, total=E.total, version=E.version)
    p.on(Added).update(key=E.order_id, total=summary.c.total + E.amount, version=E.version)
    events = [
        recorded(Placed("a", Decimal(1)), "a", 1),
        recorded(Placed("b", Decimal(2)), "b", 1),
        recorded(Placed("a", Decimal(3)), "a", 2),  # same key, same shape: the last wins
        recorded(Added("a", Decimal(1)), "a", 3),
        recorded(Added("a", Decimal(2)), "a", 4),  # same row again: the increments add up
        recorded(Other("a"), "a", 5),  # not handled
        recorded(Placed("c", Decimal(9)), "c", 1),
    ]
    conn = FakeConnection()
    assert p.apply(conn, events) == 3  # type: ignore[arg-type]
    (upsert, rows), (update, params), (_, rows2) = conn.sent
    assert "ON CONFLICT (order_id) DO UPDATE SET total = excluded.total" in upsert
    assert "jsonb_to_recordset" in upsert and "items" in upsert  # the scalar default
    assert json.loads(rows["rows"]) == [
        {"order_id": "b", "total": "2", "version": 1},
        {"order_id": "a", "total": "3", "version": 2},
    ]
    assert sorted(conn.statements[0].compile().params.values(), key=str) == [0, None]  # items
    assert update.startswith("UPDATE summary SET")
    assert "summary.total + r.d_total" in update
    # one row per key: the increments summed, the plain values of the last write
    assert json.loads(params["rows"]) == [{"k_0": "a", "v_version": 4, "d_total": "3"}]
    assert json.loads(rows2["rows"]) == [{"order_id": "c", "total": "9", "version": 1}]


def test_function_handlers_share_the_batch_and_deletes_are_set_based() -> None:
    p = Projection("p", summary, registry=REG)

    @p.on(Other)
    def _(e: RecordedEvent[Other], ctx: ProjectionContext) -> None:
        ctx.delete(summary, e.event.order_id)

    conn = FakeConnection()
    p.apply(conn, [recorded(Other("a")), recorded(Other("b"))])  # type: ignore[arg-type]
    [(delete, rows)] = conn.sent
    assert delete.startswith("DELETE FROM summary USING jsonb_to_recordset")
    assert json.loads(rows["rows"]) == [{"order_id": "a"}, {"order_id": "b"}]


def test_table_map_redirects_rules_and_sql_expressions() -> None:
    shadow = summary.to_metadata(MetaData(), name="summary__rebuild")
    p = Projection("p", summary, registry=REG)
    p.on(Added).update(key=E.order_id, items=summary.c["items"] + 1)
    conn = FakeConnection()
    p.apply(conn, [recorded(Added("a", Decimal(1)))], table_map={summary: shadow})  # type: ignore[arg-type]
    [(update, _)] = conn.sent
    assert "summary__rebuild.items + " in update and "summary.items" not in update.replace(
        "summary__rebuild", ""
    )


def test_bad_definitions_fail_at_declaration() -> None:
    p = Projection("p", summary, registry=REG)
    with pytest.raises(ProjectionError, match="no column"):
        p.on(Placed).upsert(order_id=E.order_id, nope=1)
    with pytest.raises(ProjectionError, match="primary key"):
        p.on(Placed).upsert(total=E.total)
    with pytest.raises(ProjectionError, match="need an existing row"):
        p.on(Placed).upsert(order_id=E.order_id, items=summary.c["items"] + 1)
    with pytest.raises(ProjectionError, match="1-column primary key"):
        p.on(Added).update(key=(E.order_id, E.version), total=1)
    with pytest.raises(ProjectionError, match="at least one event type"):
        p.on()
    with pytest.raises(ProjectionError, match="neither an ORM-mapped class nor a Table"):
        Projection("p", int)
    with pytest.raises(ProjectionError, match="has no model"):
        Projection("p", registry=REG).on(Placed).upsert(order_id=E.order_id)
    with pytest.raises(ProjectionError, match="1-100 character"):
        Projection("", summary)
    assert FailurePolicy().retries == 3


def test_unserialisable_values_raise() -> None:
    conn = FakeConnection()
    writer = BatchWriter(conn)  # type: ignore[arg-type]
    writer.add(Write("upsert", summary, ("a",), {"order_id": "a", "total": object()}))
    with pytest.raises(TypeError, match="cannot pass object"):
        writer.flush()


def test_runner_listens_on_the_channel_its_settings_name() -> None:
    """``Settings.notify_channel`` reaches the runner (it was read once at import before)."""
    from sqlalchemy import create_engine

    from cqrs.config import Settings
    from cqrs.projections import ProjectionRunner

    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected
    runner = ProjectionRunner(engine, [], settings=Settings(notify_channel="shop_events"))
    assert runner.channel == "shop_events"
    assert ProjectionRunner(engine, [], channel="other").channel == "other"
    assert ProjectionRunner(engine, []).channel == "cqrs_events"


def test_a_rule_reads_fields_envelope_constants_and_expressions_as_evaluate_does() -> None:
    from cqrs.projections.writes import BatchWriter

    wide = Table(
        "wide", MetaData(), Column("order_id", Text, primary_key=True),
        Column("stream", Text), Column("version", Integer), Column("kind", Text),
        Column("double", Numeric), Column("tenant", Text), Column("etype", Text),
    )  # fmt: skip
    p = Projection("p", wide, registry=REG)
    p.on(Placed, Added).upsert(
        order_id=E.order_id, stream=E.stream_id, version=E.version, kind="k",
        double=E(lambda r: getattr(r.event, "total", Decimal(0)) * 2),
        tenant=E.meta("tenant"), etype=E.event_type,
    )  # fmt: skip
    writer = BatchWriter(FakeConnection())  # type: ignore[arg-type]
    ctx = ProjectionContext(writer)
    events = [recorded(Placed("o-1", Decimal("1.5")), "s-1", 4), recorded(Added("o-2", Decimal(1)))]
    for r in events * 2:  # the second time through the per-class reader built the first time
        (rule,) = p.handlers_for(type(r.event))
        rule(r, ctx)
    want = [
        {"order_id": "o-1", "stream": "s-1", "version": 4, "kind": "k", "double": Decimal("3.0"),
         "tenant": "t-1", "etype": "pju.placed"},
        {"order_id": "o-2", "stream": "order-1", "version": 1, "kind": "k", "double": Decimal(0),
         "tenant": "t-1", "etype": "pju.added"},
    ]  # fmt: skip
    assert [dict(w.values) for w in writer.pending] == want * 2
    assert [list(w.values) for w in writer.pending] == [list(want[0])] * 4  # declared order


def test_generated_readers_give_what_evaluating_each_expression_gives() -> None:
    """A rule reads an event through code generated per class; the general path (each
    expression evaluated) is the reference."""
    p = Projection("p", summary, registry=REG)
    p.on(Placed).upsert(order_id=E.order_id, total=E.total, items=3, version=E.version)
    p.on(Added).update(
        key=E.stream_id, total=summary.c.total + E.amount, version=E.version, items=E.const(7)
    )
    p.on(Other).update(key=E(lambda r: r.event.order_id.upper()), version=E.meta("tenant", 0))
    events = [
        recorded(Placed("a", Decimal("1.5")), "a", 4),
        recorded(Added("a", Decimal(2)), "order-9", 5),
        recorded(Other("b"), "b", 6),
    ]
    inlined = []
    for r in events:
        [rule] = p.handlers_for(type(r.event))
        generated = rule._reader(type(r.event))  # type: ignore[attr-defined]
        general = rule._read(r)  # type: ignore[attr-defined]
        if generated is not None:
            inlined.append(type(r.event))
            assert generated(r) == general
    assert inlined == [Placed, Added, Other]  # the lambda and meta() called from the code
    [placed, added, other] = [
        rule._read(r)  # type: ignore[attr-defined]
        for r in events
        for rule in p.handlers_for(type(r.event))
    ]
    assert placed == (("a",), {"order_id": "a", "total": Decimal("1.5"), "items": 3,
                               "version": 4}, {})  # fmt: skip
    assert added == (("order-9",), {"version": 5, "items": 7}, {"x_0": Decimal(2)})
    assert other == (("B",), {"version": "t-1"}, {})
