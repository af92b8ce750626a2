"""Declarative and function projections applied set-based, inline and by the runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.orm import Session
from test_projection_models import (
    CustomerView,
    ItemAdded,
    OrderCancelled,
    OrderPlaced,
    OrderPurged,
    OrderShipped,
    OrderSummary,
    PaymentMade,
    append,
    build_customers,
    build_summary,
    create_read_models,
    fresh_replay,
    store,
    summary_rows,
)

from cqrs.commands.inline import InlineProjection
from cqrs.errors import ProjectionError
from cqrs.events import RecordedEvent
from cqrs.projections.batch import Outcome
from cqrs.projections.declarative import Projection, ProjectionContext
from cqrs.projections.expr import E
from cqrs.projections.runner import ProjectionRunner


@pytest.fixture
def engine(cqrs_engine: Engine) -> Engine:
    create_read_models(cqrs_engine)
    return cqrs_engine


def _runner(engine: Engine, *projections: Projection) -> ProjectionRunner:
    return ProjectionRunner(engine, list(projections), store=store(), listen=False)


@contextmanager
def _statements(engine: Engine, needle: str) -> Iterator[list[str]]:
    """The SQL statements holding ``needle`` that ``engine`` runs inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if needle in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_declarative_and_function_handlers(engine: Engine) -> None:
    append(engine, "order-1", OrderPlaced("order-1", "c-1", Decimal("10.00")))
    append(engine, "order-1", ItemAdded("order-1", Decimal("2.50")), OrderShipped("order-1"))
    append(
        engine, "order-2", OrderPlaced("order-2", "c-1", Decimal("1")), OrderCancelled("order-2")
    )
    append(engine, "order-3", OrderPlaced("order-3", "c-2", Decimal("1")), OrderPurged("order-3"))
    assert _runner(engine, build_summary()).run_until_caught_up() == 7
    rows = {r[0]: r for r in summary_rows(engine)}
    assert set(rows) == {"order-1", "order-2"}
    assert rows["order-1"][2:] == ("shipped", Decimal("12.50"), 1, 3, 3)
    assert rows["order-2"][2] == "cancelled"


def test_batch_is_set_based_and_keeps_per_row_order(engine: Engine) -> None:
    # One batch where the same rows are upserted twice and updated in between.
    for i in range(50):
        append(engine, f"order-{i}", OrderPlaced(f"order-{i}", "c", Decimal(1)))
    append(engine, "order-0", ItemAdded("order-0", Decimal(1)))
    append(engine, "order-0", OrderPlaced("order-0", "c", Decimal(7)))  # re-placed: resets
    append(engine, "order-1", OrderPlaced("order-1", "c", Decimal(9)))
    with _statements(engine, "pj_order_summary") as statements:
        assert _runner(engine, build_summary()).run_until_caught_up() == 53
    # 50 upserts -> 1 statement; update -> 1; upserts split where a key repeats -> 1.
    assert len(statements) <= 4, statements
    rows = {r[0]: r for r in summary_rows(engine)}
    assert rows["order-0"][3:5] == (Decimal(7), 0)
    assert rows["order-1"][3] == Decimal(9)
    assert summary_rows(engine) == fresh_replay(engine)


def test_repeated_key_in_one_upsert_run_applies_last(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        s = store()
        s.append(session, "order-a", [OrderPlaced("order-a", "c", Decimal(1))])
        s.append(session, "order-b", [OrderPlaced("order-b", "c", Decimal(2))])
        s.append(session, "order-a", [OrderPlaced("order-a", "c", Decimal(3))])
    _runner(engine, build_summary()).run_until_caught_up()
    rows = {r[0]: r[3] for r in summary_rows(engine)}
    assert rows == {"order-a": Decimal(3), "order-b": Decimal(2)}


def test_multi_stream_projection(engine: Engine) -> None:
    append(engine, "order-1", OrderPlaced("order-1", "c-1", Decimal(5)))
    append(engine, "order-2", OrderPlaced("order-2", "c-1", Decimal(5)))
    append(engine, "payment-1", PaymentMade("c-1", Decimal("4.5")))
    append(engine, "payment-2", PaymentMade("c-2", Decimal("1")))
    _runner(engine, build_customers()).run_until_caught_up()
    with engine.connect() as conn:
        rows = conn.execute(select(CustomerView).order_by(CustomerView.customer_id)).all()
    assert [tuple(r) for r in rows] == [("c-1", 2, Decimal("4.50")), ("c-2", 0, Decimal(1))]


def test_inline_and_async_give_the_same_read_model(engine: Engine) -> None:
    inline = build_summary("inline")
    assert isinstance(inline, InlineProjection)
    batches = [
        ("order-1", [OrderPlaced("order-1", "c", Decimal(1)), ItemAdded("order-1", Decimal(2))]),
        ("order-2", [OrderPlaced("order-2", "c", Decimal(3))]),
        ("order-1", [OrderShipped("order-1")]),
        ("order-2", [OrderCancelled("order-2")]),
        ("order-3", [OrderPlaced("order-3", "c", Decimal(3)), OrderPurged("order-3")]),
    ]
    for stream_id, events in batches:
        with Session(engine) as session, session.begin():
            result = store().append(session, stream_id, events)
            inline.apply_inline(session, result.recorded)
    inline_rows = summary_rows(engine)
    with engine.begin() as conn:
        conn.execute(OrderSummary.__table__.delete())
    _runner(engine, build_summary("async")).run_until_caught_up()
    assert summary_rows(engine) == inline_rows
    assert len(inline_rows) == 2


def test_inline_rolls_back_with_the_append(engine: Engine) -> None:
    inline = build_summary("inline")
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        result = store().append(session, "order-1", [OrderPlaced("order-1", "c", Decimal(1))])
        inline.apply_inline(session, result.recorded)
        raise RuntimeError("command failed")
    assert summary_rows(engine) == []


def test_bad_declarations_raise_typed_errors() -> None:
    p = Projection("bad", OrderSummary)
    with pytest.raises(ProjectionError, match="no column"):
        p.on(OrderPlaced).upsert(order_id=E.order_id, nope=1)
    with pytest.raises(ProjectionError, match="primary key"):
        p.on(OrderPlaced).upsert(status="x")
    with pytest.raises(ProjectionError, match="1-column primary key"):
        p.on(OrderCancelled).update(key=(E.order_id, E.version), status="x")
    with pytest.raises(ProjectionError, match="takes @event classes"):
        p.on(int)  # type: ignore[arg-type]
    with pytest.raises(ProjectionError, match="shards"):
        Projection("bad", OrderSummary, shards=0)


def test_unit_of_work_applies_projections_inline(engine: Engine) -> None:
    import attrs

    from cqrs import Aggregate, CommandBus, UnitOfWork, applies

    class PjOrder(Aggregate):
        aggregate_type = "pjorder"
        status: str = "new"

        def place(self, customer_id: str, total: Decimal) -> None:
            self.record(OrderPlaced(order_id=self.id, customer_id=customer_id, total=total))

        @applies(OrderPlaced)
        def _placed(self, e: OrderPlaced) -> None:
            self.status = "placed"

    @attrs.frozen
    class Place:
        order_id: str

    bus = CommandBus(store=store(), inline_projections=[build_summary("inline")])

    @bus.handles(Place)
    def place(cmd: Place, uow: UnitOfWork) -> None:
        uow.repository(PjOrder).create(cmd.order_id).place("c-7", Decimal("3.5"))

    with Session(engine) as session:
        bus.dispatch(Place("pjorder-1"), session)
    rows = summary_rows(engine)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("pjorder-1", "c-7", "placed", Decimal("3.50"))
    ]


def test_function_handler_with_orm_session_and_connection(engine: Engine) -> None:
    p = build_summary("orm")

    @p.on(PaymentMade)
    def _paid(e: RecordedEvent[PaymentMade], ctx: ProjectionContext) -> None:
        # Earlier queued writes of the batch are visible here.
        seen = ctx.session.get(OrderSummary, "order-1")
        assert seen is not None and seen.status == "placed"
        ctx.session.add(
            OrderSummary(order_id=f"pay-{e.version}", status="paid", total=e.event.amount)
        )
        count = ctx.connection.execute(select(func.count()).select_from(OrderSummary))
        assert count.scalar_one() >= 2

    append(engine, "order-1", OrderPlaced("order-1", "c-1", Decimal(1)))
    append(engine, "payment-1", PaymentMade("c-1", Decimal(4)))
    append(engine, "order-1", OrderCancelled("order-1"))
    _runner(engine, p).run_until_caught_up()
    rows = {r[0]: r[2] for r in summary_rows(engine)}
    assert rows == {"order-1": "cancelled", "pay-1": "paid"}


def test_non_durable_batches_commit_asynchronously(engine: Engine) -> None:
    settings: list[str] = []
    p = build_summary("fast")

    @p.on(OrderPlaced)
    def _seen(e: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        settings.append(ctx.connection.exec_driver_sql("SHOW synchronous_commit").scalar_one())

    append(engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
    ProjectionRunner(engine, [p], store=store(), listen=False, durable=False).run_until_caught_up()
    append(engine, "order-2", OrderPlaced("order-2", "c", Decimal(1)))
    _runner(engine, p).run_until_caught_up()
    assert settings == ["off", "on"]
    assert len(summary_rows(engine)) == 2
    # A projection that appends (a process manager) commits durably whatever the runner says.
    p.appends = True
    append(engine, "order-3", OrderPlaced("order-3", "c", Decimal(1)))
    ProjectionRunner(engine, [p], store=store(), listen=False, durable=False).run_until_caught_up()
    assert settings == ["off", "on", "on"]


@pytest.mark.parametrize("shards", [1, 2])
def test_batches_move_past_events_the_projection_skips(engine: Engine, shards: int) -> None:
    # Batches are windows of the log: events of other types (and shards) count
    # towards the window and the checkpoint moves past them; a window that held
    # nothing to apply makes the next one read further ahead.
    for i in range(23):
        append(engine, f"payment-{i}", PaymentMade("c", Decimal(1)))
    last = append(engine, "order-1", OrderPlaced("order-1", "c", Decimal(3)))
    outcomes: dict[int, list[Outcome]] = {}
    runner = ProjectionRunner(
        engine, [build_summary(shards=shards, batch_size=5)], store=store(), listen=False,
        on_batch=lambda target, outcome: outcomes.setdefault(target.shard, []).append(outcome),
    )  # fmt: skip
    assert runner.run_until_caught_up() == 1
    assert [r[0] for r in summary_rows(engine)] == ["order-1"]
    assert sorted(outcomes) == list(range(shards))
    for batches in outcomes.values():
        first, *rest = batches
        assert (first.applied, first.scanned, first.full) == (0, 5, True)
        assert rest and rest[0].scanned == 19  # the rest in one window of 5 * SCAN_AHEAD
        assert sum(o.scanned for o in batches) == 24
    with engine.connect() as conn:
        behind = conn.execute(
            text(
                "SELECT count(*) FROM checkpoints WHERE projection = 'order_summary' "
                "AND (transaction_id, global_position) < (CAST(:x AS xid8), :p)"
            ),
            {"x": str(last.position.transaction_id), "p": last.position.global_position},
        ).scalar_one()
    assert behind == 0


def test_the_runner_hands_handlers_the_events_read_all_gives(cqrs_engine: Engine) -> None:
    """A batch and ``read_all`` read their pages in the binary format; every field of every
    event must be what ``read_stream`` (text format) gives, also under a session time
    zone that is not UTC."""
    with cqrs_engine.connect() as conn:
        path = conn.execute(text("SHOW search_path")).scalar_one()
    options = f"-csearch_path={path.replace(' ', '')} -ctimezone=Asia/Kathmandu"
    zoned = create_engine(cqrs_engine.url, connect_args={"options": options})
    append(
        zoned, "order-7", OrderPlaced("order-7", "c-7", Decimal("7.25")), OrderShipped("order-7")
    )
    seen: list[RecordedEvent[Any]] = []
    p = Projection("seen_all", OrderSummary)

    @p.on(OrderPlaced, OrderShipped)
    def _(e: RecordedEvent[Any], ctx: ProjectionContext) -> None:
        seen.append(e)

    try:
        assert _runner(zoned, p).run_until_caught_up() >= 2
        with zoned.connect() as conn:
            everything = store().read_all(conn, limit=1000)
            stream = store().read_stream(conn, "order-7")  # text format
    finally:
        zoned.dispose()
    mine = [e for e in seen if e.stream_id == "order-7"]
    assert len(mine) == 2
    assert mine == [e for e in everything if e.stream_id == "order-7"] == list(stream)
    assert all(str(e.recorded_at.tzinfo) == "Asia/Kathmandu" for e in mine)
