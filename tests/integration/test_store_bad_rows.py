"""Internal: rows in the log that cannot be read as their class, inserted with SQL as
another program (or a bug) would write them, on PostgreSQL in both layouts.

Every read path (``read_stream``, ``read_all``, ``Repository.get``, the runner, the
CLI) refuses them with an ``EventDecodeError`` carrying stream, version and
position, never reading a changed value; a ``read_all`` reader steps over one with
``after=err.position``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Boolean, Engine, String, make_url, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cqrs import (
    Aggregate,
    Event,
    EventRegistry,
    EventStore,
    Position,
    Repository,
    applies,
    event,
)
from cqrs.cli.common import Exit
from cqrs.cli.main import main
from cqrs.errors import EventDecodeError, UnknownEventType
from cqrs.projections.declarative import FailurePolicy, Projection
from cqrs.projections.expr import E
from cqrs.projections.runner import ProjectionRunner
from cqrs.projections.tables import dead_letters
from cqrs.testing.conformance import wait_for_horizon

registry = EventRegistry()


@event("bad.paid", registry=registry)
class OrderPaid(Event):
    order_id: str
    paid: bool
    qty: int
    name: str


@event("bad.renamed", version=2, registry=registry)
class Renamed(Event):
    first: str


@registry.upcaster("bad.renamed", from_version=1)
def _split(data: dict[str, Any]) -> dict[str, Any]:
    return {"first": data["name"].split()[0]}  # KeyError on a row without "name"


class Order(Aggregate):
    aggregate_type = "order"
    paid: bool = False

    @applies(OrderPaid)
    def _paid(self, e: OrderPaid) -> None:
        self.paid = e.paid


class Base(DeclarativeBase):
    pass


class Payment(Base):
    __tablename__ = "bad_rows_payment"

    order_id: Mapped[str] = mapped_column(String, primary_key=True)
    paid: Mapped[bool] = mapped_column(Boolean)


def _paid(order_id: str, paid: bool = True) -> OrderPaid:
    return OrderPaid(order_id=order_id, paid=paid, qty=3, name="n")


@pytest.fixture
def store() -> EventStore:
    return EventStore(registry=registry)


def _append(engine: Engine, store: EventStore, stream_id: str, *events: Event) -> None:
    with Session(engine) as s, s.begin():
        store.append(s, stream_id, list(events))


def _insert(
    engine: Engine,
    stream_id: str,
    event_type: str,
    data: str,
    *,
    sv: int = 1,
    metadata: str = "{}",
) -> tuple[int, Position]:
    """A row as another program would write it (JSON given as text); returns its version
    and position once readers can see it."""
    with engine.begin() as conn:
        version = conn.execute(
            text(
                "INSERT INTO streams AS s (stream_id, stream_type, version) "
                "VALUES (:sid, 'order', 1) ON CONFLICT (stream_id) "
                "DO UPDATE SET version = s.version + 1 RETURNING version"
            ),
            {"sid": stream_id},
        ).scalar_one()
        xid, pos = conn.execute(
            text(
                "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
                "schema_version, data, metadata) VALUES (:eid, :sid, 'order', :v, :t, :sv, "
                "CAST(:data AS jsonb), CAST(:meta AS jsonb)) "
                "RETURNING transaction_id::text, global_position"
            ),
            {
                "eid": uuid.uuid4(),
                "sid": stream_id,
                "v": version,
                "t": event_type,
                "sv": sv,
                "data": data,
                "meta": metadata,
            },
        ).one()
    wait_for_horizon(engine, int(xid))
    return int(version), Position(int(xid), int(pos))


def _settle(engine: Engine, store: EventStore) -> None:
    with engine.connect() as conn:
        head = store.head(conn)
    wait_for_horizon(engine, head.transaction_id)


ISSUE_ROW = json.dumps({"order_id": "o-1", "paid": "false", "qty": 3.7, "name": 123, "extra": 1})


def test_the_issue_row_is_refused_on_every_read_path(log_engine: Engine, store: EventStore) -> None:
    """``{"paid": "false", "qty": 3.7, "name": 123, "extra": 1}`` once read as
    ``paid=True, qty=3, name='123'``."""
    _append(log_engine, store, "order-o-1", _paid("o-1", paid=False))
    version, position = _insert(log_engine, "order-o-1", "bad.paid", ISSUE_ROW)
    _append(log_engine, store, "order-o-2", _paid("o-2"))
    _settle(log_engine, store)
    reads: list[Callable[[Session], object]] = [
        lambda s: store.read_stream(s, "order-o-1"),
        lambda s: store.read_all(s),
        lambda s: Repository(Order, s, store=store).get("o-1"),
    ]
    for read in reads:
        with Session(log_engine) as s, pytest.raises(EventDecodeError) as info:
            read(s)
        err = info.value
        assert (err.stream_id, err.version, err.position) == ("order-o-1", version, position)
        assert err.event_type == "bad.paid" and err.field == "extra"
        assert "order-o-1" in str(err) and str(position) in str(err)
    with Session(log_engine) as s:
        # step over it: the events before and after it are all there
        before = store.read_all(s, limit=1)
        after = store.read_all(s, after=position)
        assert [e.event for e in before + after] == [_paid("o-1", paid=False), _paid("o-2")]
        assert store.read_stream(s, "order-o-1", to_version=version - 1)[0].event.paid is False  # type: ignore[attr-defined]


def test_only_the_offending_field_is_named(log_engine: Engine, store: EventStore) -> None:
    row = {"order_id": "o-1", "paid": "false", "qty": 3, "name": "n"}
    _insert(log_engine, "order-o-1", "bad.paid", json.dumps(row))
    with log_engine.connect() as conn, pytest.raises(EventDecodeError) as info:
        store.read_stream(conn, "order-o-1")
    assert info.value.field == "paid" and "the string 'false'" in str(info.value)


GOOD_ROW = json.dumps({"order_id": "o-1", "paid": True, "qty": 3, "name": "n"})
DEEP = '{"order_id": ' + "[" * 3000 + "]" * 3000 + "}"

BAD_ROWS = {
    "unknown type": ("bad.nope", 1, '{"a": 1}', "{}", "no event class"),
    "newer schema": ("bad.renamed", 3, '{"first": "Ada"}', "{}", "newer than"),
    "upcaster raises": ("bad.renamed", 1, '{"nom": "Ada"}', "{}", "raised KeyError"),
    "array payload": ("bad.paid", 1, "[1, 2]", "{}", "not a JSON object"),
    "string payload": ("bad.paid", 1, '"paid"', "{}", "not a JSON object"),
    "number payload": ("bad.paid", 1, "7", "{}", "not a JSON object"),
    "array metadata": ("bad.paid", 1, GOOD_ROW, "[1]", "metadata is not a JSON object"),
    "5000 digits": ("bad.paid", 1, '{"qty": 1' + "0" * 5000 + "}", "{}", "digits"),
    "nested 3000 deep": ("bad.paid", 1, DEEP, "{}", "RecursionError"),
    "wrong types": ("bad.paid", 1, ISSUE_ROW, "{}", "declares no field 'extra'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_every_kind_of_bad_row_is_a_typed_error_you_can_step_over(
    log_engine: Engine, store: EventStore, case: str
) -> None:
    event_type, sv, data, meta, problem = BAD_ROWS[case]
    _append(log_engine, store, "order-o-1", _paid("o-1"))
    version, position = _insert(log_engine, "order-o-1", event_type, data, sv=sv, metadata=meta)
    _append(log_engine, store, "order-o-1", _paid("o-1", paid=False))
    _settle(log_engine, store)
    with log_engine.connect() as conn:
        reads: list[Callable[[], object]] = [
            lambda: store.read_stream(conn, "order-o-1"),
            lambda: store.read_all(conn),
        ]
        for read in reads:
            with pytest.raises(EventDecodeError, match=problem) as info:
                read()
            err = info.value
            assert (err.stream_id, err.version, err.position) == ("order-o-1", version, position)
            assert err.event_type == event_type and "Traceback" not in str(err)
            assert isinstance(err, UnknownEventType) == (case == "unknown type")
        # the documented way on: read again after the bad row's position
        assert err.position is not None
        assert [e.version for e in store.read_all(conn, after=err.position)] == [version + 1]
        tail = store.read_stream(conn, "order-o-1", from_version=version + 1)
        assert [e.event for e in tail] == [_paid("o-1", paid=False)]


def _cli_url(engine: Engine, base: str) -> str:
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def test_cli_tail_warns_and_goes_on_show_marks_the_row(
    log_engine: Engine,
    store: EventStore,
    cqrs_database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _append(log_engine, store, "order-o-1", _paid("o-1"))
    version, position = _insert(log_engine, "order-o-1", "bad.paid", DEEP)
    _append(log_engine, store, "order-o-1", _paid("o-1", paid=False))
    _append(log_engine, store, "order-o-2", _paid("o-2"))
    _settle(log_engine, store)
    url = _cli_url(log_engine, cqrs_database_url)

    assert main(["events", "tail", "--no-follow", "--json", "--database-url", url]) == Exit.RUNTIME
    out, err = capsys.readouterr()
    shown = [json.loads(line) for line in out.splitlines()]
    assert [(e["stream_id"], e["version"]) for e in shown] == [
        ("order-o-1", 1), ("order-o-1", 3), ("order-o-2", 1),
    ]  # fmt: skip
    (warning,) = err.splitlines()
    assert warning.startswith(f"cqrs: warning: skipped the unreadable event at {position}")
    assert f"version {version}" in warning and "RecursionError" in warning

    assert main(["streams", "show", "order-o-1", "--database-url", url]) == Exit.RUNTIME
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 4 and "UNREADABLE" in lines[2] and "RecursionError" in lines[2]
    assert "UNREADABLE" not in lines[1] + lines[3] and "Traceback" not in out + err


def test_the_runner_parks_a_bad_row_instead_of_projecting_a_changed_value(
    log_engine: Engine, store: EventStore
) -> None:
    Base.metadata.create_all(log_engine)
    payments = Projection(
        "bad_rows_payments",
        Payment,
        policy=FailurePolicy(retries=0, backoff=0.0, max_backoff=0.0),
        registry=registry,
    )
    payments.on(OrderPaid).upsert(order_id=E.order_id, paid=E.paid)
    _insert(log_engine, "order-o-1", "bad.paid", ISSUE_ROW)
    _append(log_engine, store, "order-o-2", _paid("o-2"))
    _settle(log_engine, store)
    runner = ProjectionRunner(log_engine, [payments], store=store, listen=False)
    runner.run_until_caught_up(timeout=60)
    with log_engine.connect() as conn:
        rows = conn.execute(select(Payment.order_id, Payment.paid)).all()
        parked = conn.execute(
            select(dead_letters.c.stream_id, dead_letters.c.error).where(
                dead_letters.c.projection == "bad_rows_payments"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("o-2", True)]  # never ("o-1", True)
    assert [r[0] for r in parked] == ["order-o-1"]
    assert "declares no field 'extra'" in parked[0][1], parked[0][1]
