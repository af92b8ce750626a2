"""Bad input is a typed error raised before anything is sent, so the caller's transaction
and its own rows survive (real PostgreSQL); the limits live in ``Settings``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from commands_domain import Counter, Order, PlaceOrder, make_bus
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import ANY, STREAM_EXISTS, CommandBus, EventStore, Repository, Settings, UnitOfWork
from cqrs.config import MAX_NESTING_DEPTH
from cqrs.errors import (
    ConfigurationError,
    CqrsError,
    InvalidAggregateId,
    InvalidCommandId,
    InvalidMetadata,
    InvalidReadRange,
    InvalidStreamId,
    InvalidTypeName,
    PayloadTooDeep,
    SerializationError,
    StreamFull,
)
from cqrs.store.guards import allow_rewrite
from cqrs.testing import InMemoryEventStore, isolated_schema
from cqrs.testing.conformance import Noted, registry

HUGE = "x" * 10_000_000


@pytest.fixture(scope="module")
def module_engine(cqrs_database_url: str) -> Iterator[Engine]:
    with isolated_schema(cqrs_database_url) as engine:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE audit (note text NOT NULL)"))
        yield engine


@pytest.fixture
def engine(module_engine: Engine) -> Engine:
    """One schema for the module (cheaper than a fresh one per test), emptied before each."""
    with module_engine.begin() as conn:
        allow_rewrite(conn)  # the owner empties the log between tests (cqrs.store.guards)
        for table in ("audit", "events", "streams", "processed_commands", "snapshots"):
            conn.execute(text(f"DELETE FROM {table}"))
    return module_engine


def _notes(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT note FROM audit ORDER BY note")).scalars())


def _own_row_survives(
    engine: Engine, call: Callable[[Session], object], error: type[CqrsError]
) -> CqrsError:
    """Write a row of the caller's own table, make the bad call in the same transaction,
    catch its error, commit: the row must be there."""
    with Session(engine) as session, session.begin():
        session.execute(text("INSERT INTO audit VALUES ('mine')"))
        with pytest.raises(error) as info:
            call(session)
    assert _notes(engine) == ["mine"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 0
    return info.value


store = EventStore(registry=registry)

APPEND_CASES: list[Any] = [
    pytest.param(lambda s: store.append(s, "s-\ud800", [Noted("x")]), InvalidStreamId, id="id-sur"),
    pytest.param(lambda s: store.append(s, HUGE, [Noted("x")]), InvalidStreamId, id="id-10mb"),
    pytest.param(lambda s: store.append(s, "\u200b", [Noted("x")]), InvalidStreamId, id="id-zw"),
    pytest.param(
        lambda s: store.append(s, "s-1", [Noted("x")], stream_type="a\x00"),
        InvalidTypeName,
        id="stype-nul",
    ),
    pytest.param(
        lambda s: store.append(s, "s-1", [Noted("x")], stream_type=HUGE),
        InvalidTypeName,
        id="stype-10mb",
    ),
    pytest.param(
        lambda s: store.append(s, "s-1", [Noted("x")], metadata={"k": "\udc00"}),
        InvalidMetadata,
        id="meta-sur",
    ),
    pytest.param(
        lambda s: store.append(s, "s-1", [Noted("x")], metadata=["k"]),
        InvalidMetadata,
        id="meta-list",
    ),
    pytest.param(
        lambda s: store.append(s, "s-1", [Noted([[[[[]]]]] * 1)], metadata={"d": [[[]]] * 1}),
        None,
        id="shallow-is-fine",
    ),
    pytest.param(lambda s: store.read_stream(s, "a\x00"), InvalidStreamId, id="read-nul"),
    pytest.param(lambda s: store.read_stream(s, 17), InvalidStreamId, id="read-int"),
    pytest.param(lambda s: store.read_all(s, limit=-1), InvalidReadRange, id="read-all-neg"),
    pytest.param(lambda s: store.read_all(s, types=["\x00"]), InvalidTypeName, id="types-nul"),
]


@pytest.mark.parametrize(("call", "error"), APPEND_CASES)
def test_store_input_errors_leave_the_callers_rows(
    engine: Engine, call: Callable[[Session], object], error: type[CqrsError] | None
) -> None:
    if error is None:  # the control case: valid input goes through
        with Session(engine) as session, session.begin():
            call(session)
        return
    _own_row_survives(engine, call, error)


# -- stream version overflow --------------------------------------------------------------


@pytest.mark.parametrize("expected", [ANY, STREAM_EXISTS, 2**31 - 1], ids=str)
def test_stream_full_is_typed_and_the_transaction_goes_on(engine: Engine, expected: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO streams (stream_id, stream_type, version) "
                "VALUES ('full-1', 'full', 2147483647)"
            )
        )
    with Session(engine) as session, session.begin():
        session.execute(text("INSERT INTO audit VALUES ('mine')"))
        with pytest.raises(StreamFull) as info:
            store.append(session, "full-1", [Noted("x")], expected_version=expected)
        store.append(session, "other-1", [Noted("y")])  # the transaction still works
    err = info.value
    assert (err.stream_id, err.version, err.count) == ("full-1", 2**31 - 1, 1)
    assert "archive it" in str(err) and err.code == "cqrs-stream-full"
    assert _notes(engine) == ["mine"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 1


def test_stream_full_in_memory() -> None:
    memory = InMemoryEventStore(registry)
    memory.append(None, "full-1", [Noted("x")])
    with memory.transaction() as tx:
        info = memory.log.streams["full-1"]
        import attrs

        memory.log.streams["full-1"] = attrs.evolve(info, version=2**31 - 1)
        with pytest.raises(StreamFull):
            memory.append(tx, "full-1", [Noted("y")])


# -- repositories ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, 5, "", "   ", "\u200b\u200b", "a\x00", "\ud800", HUGE])
def test_repository_create_refuses_unusable_ids(engine: Engine, bad: Any) -> None:
    def create(session: Session) -> object:
        return Repository(Order, session).create(bad)

    err = _own_row_survives(engine, create, InvalidAggregateId)
    assert "Order" in str(err) and "str(" in str(err) and len(str(err)) < 1000


@pytest.mark.parametrize("method", ["get", "get_or_none"])
@pytest.mark.parametrize("bad", [None, 5])
def test_repository_get_refuses_non_strings(engine: Engine, bad: Any, method: str) -> None:
    _own_row_survives(
        engine, lambda s: getattr(Repository(Counter, s), method)(bad), InvalidAggregateId
    )


def test_repository_create_none_no_longer_makes_a_none_stream(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(InvalidAggregateId):
        Repository(Order, session).create(None)  # type: ignore[arg-type]
    with Session(engine) as session:
        assert EventStore().stream_info(session, "order-None") is None


# -- command ids and results ----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", "\u200b", "cmd\x00", "cmd-\ud800", HUGE, 17, b"cmd"], ids=lambda v: repr(v)[:20]
)
def test_bad_command_ids_are_refused_before_anything_is_sent(engine: Engine, bad: Any) -> None:
    bus = make_bus()

    def dispatch(session: Session) -> object:
        return bus.dispatch(PlaceOrder("o-1", "c-1", Decimal(1)), session, command_id=bad)

    err = _own_row_survives(engine, dispatch, InvalidCommandId)
    assert "max_command_id_length" in str(err) and len(str(err)) < 1000
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM processed_commands")).scalar_one() == 0


def test_command_id_on_the_command_is_checked_too(engine: Engine) -> None:
    bus = make_bus()
    _own_row_survives(
        engine,
        lambda s: bus.dispatch(PlaceOrder("o-1", "c-1", Decimal(1), command_id="a\x00"), s),
        InvalidCommandId,
    )


def test_command_id_length_comes_from_settings(engine: Engine) -> None:
    bus = make_bus(store=EventStore(settings=Settings(max_command_id_length=8)))
    with Session(engine) as session:
        bus.dispatch(PlaceOrder("o-1", "c-1", Decimal(1)), session, command_id="12345678")
        with pytest.raises(InvalidCommandId, match="over 8"):
            bus.dispatch(PlaceOrder("o-2", "c-1", Decimal(1)), session, command_id="123456789")


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"k": "a\x00b"}, SerializationError),
        ({"k": "\ud800"}, SerializationError),
        ([[[[[[["deep"]]]]]]], PayloadTooDeep),
    ],
    ids=["nul", "surrogate", "deep"],
)
def test_results_jsonb_cannot_hold_are_refused_in_the_callers_transaction(
    engine: Engine, result: Any, error: type[CqrsError]
) -> None:
    bus = CommandBus(store=EventStore(settings=Settings(max_nesting_depth=5)))

    @bus.handles(PlaceOrder)
    def place(cmd: PlaceOrder, uow: UnitOfWork) -> Any:
        uow.repository(Order).create(cmd.order_id).place("c-1", Decimal(1))
        return result

    _own_row_survives(
        engine,
        lambda s: bus.dispatch(PlaceOrder("o-1", "c-1", Decimal(1)), s, command_id="cmd-1"),
        error,
    )


# -- settings -------------------------------------------------------------------------------


def test_limits_are_read_from_the_environment() -> None:
    env = {
        "CQRS_MAX_TYPE_LENGTH": "50",
        "CQRS_MAX_COMMAND_ID_LENGTH": "64",
        "CQRS_MAX_NESTING_DEPTH": "20",
        "CQRS_MAX_READ_LIMIT": "500",
        "CQRS_MAX_ID_LENGTH": "100",
    }
    s = Settings.from_env(env)
    assert (s.max_type_length, s.max_command_id_length, s.max_nesting_depth) == (50, 64, 20)
    assert (s.max_read_limit, s.max_id_length) == (500, 100)
    d = Settings()
    assert (d.max_type_length, d.max_command_id_length, d.max_nesting_depth) == (200, 200, 100)
    assert d.max_read_limit == 10_000
    with pytest.raises(ConfigurationError, match="CQRS_MAX_READ_LIMIT must be an integer"):
        Settings.from_env({"CQRS_MAX_READ_LIMIT": "lots"})
    with pytest.raises(ConfigurationError, match="max_nesting_depth must be from 1 to"):
        Settings(max_nesting_depth=MAX_NESTING_DEPTH + 1)
    with pytest.raises(ConfigurationError, match="max_read_limit must be positive"):
        Settings(max_read_limit=0)


def test_the_deepest_allowed_nesting_encodes(engine: Engine) -> None:
    """At ``MAX_NESTING_DEPTH`` the codec still works (no RecursionError)."""
    deep: Any = "leaf"
    for _ in range(MAX_NESTING_DEPTH - 2):
        deep = [deep]
    deepest = EventStore(registry=registry, settings=Settings(max_nesting_depth=MAX_NESTING_DEPTH))
    with Session(engine) as session, session.begin():
        deepest.append(session, "deep-1", [Noted(deep)], metadata={"d": deep})
    with Session(engine) as session:
        assert deepest.read_stream(session, "deep-1")[0].event == Noted(deep)
