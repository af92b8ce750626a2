"""A read model's runner batch does not hold other readers of the log back while it
writes; a process manager's does. The batch marks its transaction before its first
write (``cqrs.store.no_append``): the store then refuses to append in it, and the
read horizon skips its id only while the session's name carries that very id."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from test_projection_models import (
    HOOKS,
    Marker,
    OrderPlaced,
    append,
    build_summary,
    create_read_models,
    store,
)

from cqrs import START, FailurePolicy, Projection, ProjectionContext, RecordedEvent, StreamAppend
from cqrs.errors import AppendInReadModelBatch
from cqrs.projections import ProjectionRunner, horizon_holder
from cqrs.store import no_append
from cqrs.store.horizon import horizon


def _read_streams(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [e.stream_id for e in store().read_all(conn, after=START)]


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    opened = threading.Event()
    HOOKS["gate"] = opened
    try:
        yield opened
    finally:
        opened.set()
        HOOKS.pop("gate", None)
        HOOKS["pids"].clear()


@pytest.mark.parametrize("appends", [False, True], ids=["read model", "appending"])
def test_a_batch_held_open_mid_apply_holds_readers_back_only_if_it_may_append(
    cqrs_engine: Engine, gate: threading.Event, appends: bool
) -> None:
    create_read_models(cqrs_engine)
    summary = build_summary()
    summary.appends = appends
    append(cqrs_engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)), Marker("sleep"))
    runner = ProjectionRunner(cqrs_engine, [summary], store=store(), listen=False)
    batch = threading.Thread(target=runner.step)
    batch.start()
    try:
        for _ in range(200):  # until the handler waits at the gate, its transaction open
            if HOOKS["pids"]:
                break
            gate.wait(0.05)
        assert HOOKS["pids"], "the batch never reached its handler"
        pid = HOOKS["pids"][0]
        with cqrs_engine.connect() as conn:
            name, xid = conn.execute(
                text("SELECT application_name, backend_xid::text FROM pg_stat_activity "
                     "WHERE pid = :pid"), {"pid": pid},
            ).one()  # fmt: skip
        assert xid is not None  # it has written (its upsert), so it holds an id
        assert name.startswith(f"{no_append.NAME_PREFIX}{xid}~") != appends
        later = append(cqrs_engine, "order-2", OrderPlaced("order-2", "c", Decimal(2)))
        assert later.position.transaction_id > int(xid)
        seen = _read_streams(cqrs_engine)
        holder = horizon_holder(cqrs_engine)
        if appends:
            assert seen == ["order-1", "order-1"]  # order-2 waits for the batch
            assert holder is not None and holder.pid == pid
        else:
            assert seen == ["order-1", "order-1", "order-2"]
            assert holder is None
    finally:
        gate.set()
        batch.join(10)
        runner.close()
    assert runner.run_until_caught_up(timeout=10) >= 1
    with cqrs_engine.connect() as conn:  # the name is the session's own again
        names = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :p"),
            {"p": no_append.NAME_PREFIX + "%"},
        ).scalar_one()
    assert names == 0


def test_a_marked_transaction_cannot_append_and_writes_nothing(log_engine: Engine) -> None:
    event = OrderPlaced("order-1", "c", Decimal(1))
    attempts = {
        "append": lambda c: store().append(c, "order-1", [event]),
        "append, several events": lambda c: store().append(c, "order-1", [event, event]),
        "append_many": lambda c: store().append_many(
            c, [StreamAppend("order-1", [event]), StreamAppend("order-2", [event])]
        ),
        "import_streams": lambda c: store().import_streams(c, [StreamAppend("order-1", [event])]),
    }
    for what, attempt in attempts.items():
        with log_engine.connect() as conn, conn.begin():
            conn.execute(no_append.MARK)
            with pytest.raises(AppendInReadModelBatch, match="appends=True") as refused:
                attempt(conn)
            assert refused.value.code == "cqrs-append-in-read-model", what
    with log_engine.connect() as conn:
        counts = conn.execute(text("SELECT (SELECT count(*) FROM events), "
                                   "(SELECT count(*) FROM streams)")).one()  # fmt: skip
    assert tuple(counts) == (0, 0)
    append(log_engine, "order-1", event)  # the next transaction appends as usual
    assert _read_streams(log_engine) == ["order-1"]


def test_a_transaction_that_wrote_before_the_mark_stays_a_writer(log_engine: Engine) -> None:
    with log_engine.connect() as held, held.begin():
        xid = int(held.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())
        before = held.execute(text("SHOW application_name")).scalar_one()
        held.execute(no_append.MARK)
        assert held.execute(text("SHOW application_name")).scalar_one() == before
        later = append(log_engine, "order-2", OrderPlaced("order-2", "c", Decimal(2)))
        with log_engine.connect() as reader:
            assert horizon(reader) <= xid < later.position.transaction_id
        assert _read_streams(log_engine) == []
        store().append(held, "order-1", [OrderPlaced("order-1", "c", Decimal(1))])
    assert sorted(_read_streams(log_engine)) == ["order-1", "order-2"]


def test_a_name_that_does_not_carry_the_sessions_own_id_is_not_trusted(
    log_engine: Engine,
) -> None:
    with log_engine.connect() as held, held.begin():
        xid = int(held.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())
        for other in (xid - 1, xid + 1, xid + 2**32):  # another id, or the same low bits
            name = f"{no_append.NAME_PREFIX}{other}~ forged"
            held.execute(text("SELECT set_config('application_name', :n, true)"), {"n": name})
            append(log_engine, f"order-{other}", OrderPlaced("o", "c", Decimal(1)))
            with log_engine.connect() as reader:
                assert horizon(reader) <= xid
            assert _read_streams(log_engine) == []
            holder = horizon_holder(log_engine)
            assert holder is not None and holder.transaction_id == xid
    assert len(_read_streams(log_engine)) == 3


def _appending_projection(name: str, *, appends: bool) -> Projection:
    projection = Projection(
        name, registry=store().codec.registry, appends=appends,
        policy=FailurePolicy(retries=0, backoff=0.01, max_backoff=0.01),
    )  # fmt: skip

    @projection.on(OrderPlaced)
    def _echo(e: RecordedEvent[OrderPlaced], ctx: ProjectionContext) -> None:
        if not e.stream_id.startswith("echo-"):
            store().append(ctx.connection, f"echo-{e.stream_id}", [e.event])

    return projection


@pytest.mark.parametrize("appends", [False, True], ids=["read model", "appending"])
def test_a_projection_appends_only_when_it_says_it_does(cqrs_engine: Engine, appends: bool) -> None:
    append(cqrs_engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
    projection = _appending_projection("echo", appends=appends)
    runner = ProjectionRunner(cqrs_engine, [projection], store=store(), listen=False)
    try:
        runner.run_until_caught_up(timeout=10)
    finally:
        runner.close()
    with cqrs_engine.connect() as conn:
        errors = conn.execute(text("SELECT error FROM dead_letters")).scalars().all()
    if appends:
        assert _read_streams(cqrs_engine) == ["order-1", "echo-order-1"] and errors == []
    else:
        assert _read_streams(cqrs_engine) == ["order-1"]
        assert len(errors) == 1 and "AppendInReadModelBatch" in errors[0]
