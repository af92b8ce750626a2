"""Query bus, read-your-writes, status, the NOTIFY hint and the CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import attrs
import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import InternalError
from sqlalchemy.orm import Session, sessionmaker
from test_projection_models import (
    HOOKS,
    Marker,
    OrderPlaced,
    OrderSummary,
    append,
    build_summary,
    create_read_models,
    store,
)

from cqrs.cli.main import main
from cqrs.errors import CommandError, QueryError, QueryHandlerNotFound, ReadModelTimeout
from cqrs.projections.notify import Listener, install_notify
from cqrs.projections.runner import ProjectionRunner
from cqrs.projections.status import horizon_holder, projection_status, wait_for
from cqrs.queries import Query, QueryBus


@attrs.frozen
class OrdersOfCustomer(Query[list[str]]):
    customer_id: str


@attrs.frozen
class Unhandled(Query[int]):
    pass


@pytest.fixture
def engine(cqrs_engine: Engine) -> Iterator[Engine]:
    create_read_models(cqrs_engine)
    HOOKS["fail"] = set()
    HOOKS.pop("gate", None)
    yield cqrs_engine


def _bus(engine: Engine) -> QueryBus:
    bus = QueryBus(engine)

    @bus.handles(OrdersOfCustomer)
    def orders_of(q: OrdersOfCustomer, session: Session) -> list[str]:
        rows = session.scalars(
            select(OrderSummary.order_id)
            .where(OrderSummary.customer_id == q.customer_id)
            .order_by(OrderSummary.order_id)
        )
        return list(rows)

    return bus


def test_query_bus_answers_in_a_read_only_session(engine: Engine) -> None:
    append(engine, "order-1", OrderPlaced("order-1", "c-1", Decimal(1)))
    ProjectionRunner(engine, [build_summary()], store=store(), listen=False).run_until_caught_up()
    bus = _bus(engine)
    assert bus.ask(OrdersOfCustomer("c-1")) == ["order-1"]

    @bus.handles(Unhandled)
    def writes(q: Unhandled, session: Session) -> int:
        session.execute(text("DELETE FROM pj_order_summary"))
        return 0

    with pytest.raises(InternalError, match="read-only transaction"):
        bus.ask(Unhandled())
    assert bus.ask(OrdersOfCustomer("c-1")) == ["order-1"]
    with pytest.raises(QueryHandlerNotFound) as missing:
        QueryBus(engine).ask(Unhandled())
    assert not isinstance(missing.value, CommandError)  # a query is not a command
    with pytest.raises(QueryError, match="already has a handler"):
        bus.handles(Unhandled)(writes)


def test_query_bus_bound_to_another_engine(engine: Engine) -> None:
    # A second engine stands in for a replica: the bus only ever uses its own bind.
    replica = create_engine(engine.url, connect_args={"options": _search_path(engine)})
    try:
        append(engine, "order-1", OrderPlaced("order-1", "c-9", Decimal(1)))
        ProjectionRunner(
            engine, [build_summary()], store=store(), listen=False
        ).run_until_caught_up()
        used: list[object] = []
        bus = _bus(replica)
        bus.sessions = sessionmaker(replica)
        from sqlalchemy import event

        event.listen(replica, "connect", lambda *a: used.append(a))
        assert bus.ask(OrdersOfCustomer("c-9")) == ["order-1"]
        assert used
    finally:
        replica.dispose()


def _search_path(engine: Engine) -> str:
    with engine.connect() as conn:
        return f"-csearch_path={conn.execute(text('SELECT current_schema()')).scalar_one()},public"


def test_read_your_writes_waits_for_the_runner(engine: Engine) -> None:
    projection = build_summary()
    runner = ProjectionRunner(engine, [projection], store=store(), poll_interval=0.05)
    factory = sessionmaker(engine)
    notifier = install_notify(factory, engine=engine)
    thread = threading.Thread(target=runner.run_forever)
    thread.start()
    try:
        for i in range(5):
            placed = OrderPlaced(f"order-{i}", "c-2", Decimal(1))
            with factory() as session, session.begin():
                result = store().append(session, f"order-{i}", [placed])
            token = str(result.position)
            assert _bus(engine).ask(
                OrdersOfCustomer("c-2"), after=token, wait_for=projection, timeout=30
            ) == [f"order-{j}" for j in range(i + 1)]
    finally:
        runner.stop.set()
        thread.join(timeout=30)
        notifier.close()
    assert notifier.sent >= 1


def test_read_your_writes_times_out_without_a_runner(engine: Engine) -> None:
    result = append(engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
    with pytest.raises(ReadModelTimeout, match="did not reach position"):
        wait_for(engine, build_summary(), result.position, timeout=0.2)
    with pytest.raises(ReadModelTimeout):
        _bus(engine).ask(OrdersOfCustomer("c"), after=result.position, wait_for="order_summary",
                         timeout=0.1)  # fmt: skip


def test_notify_is_sent_after_commit_and_heard(engine: Engine) -> None:
    listener = Listener(engine, "pj_test_channel")
    factory = sessionmaker(engine)
    notifier = install_notify(factory, "pj_test_channel")
    try:
        assert not listener.wait(0.05)
        with factory() as session, session.begin():
            store().append(session, "order-1", [OrderPlaced("order-1", "c", Decimal(1))])
        assert listener.wait(10)
    finally:
        notifier.close()
        listener.close()


def test_status_shows_lag_errors_and_the_horizon_holder(engine: Engine) -> None:
    HOOKS["fail"] = {"order-1"}
    append(engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)), Marker("fail", "order-1"))
    ProjectionRunner(engine, [build_summary()], store=store(), listen=False).run_until_caught_up()
    append(engine, "order-2", OrderPlaced("order-2", "c", Decimal(1)))
    [shard] = projection_status(engine)
    assert shard.projection == "order_summary" and shard.behind == 1
    assert shard.parked == 1 and "poison" in (shard.last_error or "")
    holder_session = Session(engine)
    try:
        holder_session.begin()
        pid = holder_session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        holder_session.execute(text("SELECT pg_current_xact_id()"))
        time.sleep(0.05)
        holder = horizon_holder(engine)
        assert holder is not None and holder.pid == pid
        assert horizon_holder(engine, min_age=3600) is None
    finally:
        holder_session.rollback()
        holder_session.close()


def test_cli_run_status_and_dead_letters(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    schema = _search_path(engine)
    url += (
        ("&" if "?" in url else "?") + "options=" + schema.replace("=", "%3D").replace(",", "%2C")
    )
    monkeypatch.setenv("CQRS_DATABASE_URL", url)
    HOOKS["fail"] = {"order-1"}
    append(engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)), Marker("fail", "order-1"))
    append(engine, "order-2", OrderPlaced("order-2", "c", Decimal(1)))
    module = "test_projection_models:projections"
    assert main(["projections", "run", "--module", module, "--once", "--json"]) == 4  # parked
    ran = json.loads(capsys.readouterr().out)
    assert (ran["events"], ran["parked"]) == (3, 1)
    assert main(["projections", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["shards"][0]["parked"] == 1 and status["shards"][0]["last_error"]
    assert main(["projections", "dead-letters", "list", "--json"]) == 0
    [letter] = json.loads(capsys.readouterr().out)
    assert letter["stream_id"] == "order-1" and ran["dead_letters"] == [letter["id"]]
    HOOKS["fail"] = set()
    args = ["projections", "dead-letters", "retry", "--projection", "order_summary",
            "--module", module, "--stream", "order-1", "--json"]  # fmt: skip
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == {"applied": 1}
    assert main(["projections", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)  # retried: the error is settled
    assert status["shards"][0]["parked"] == 0 and status["shards"][0]["last_error"] is None
    assert main(["projections", "dead-letters", "skip", "1", "--projection", "nope"]) == 1
    assert "no dead letters" in capsys.readouterr().err
    assert main(["projections", "rebuild", "order_summary", "--module", module, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events"] == 3
    assert main(["projections", "run", "--module", "no_such_module:x", "--once"]) == 2
