"""Public: the behaviour every ``EventStore`` backend must share, as a pytest suite.

Subclass :class:`EventStoreConformance` in a test module and provide a
``store_harness`` fixture: an object with ``store(registry)`` (a store over
the backend's one database) and ``transaction()`` (a context manager yielding
what the store's methods take as executor; it commits when the block ends and
rolls back when it raises). The PostgreSQL store and the in-memory double pass
the same suite::

    class TestMyBackend(EventStoreConformance):
        @pytest.fixture
        def store_harness(self, cqrs_engine):
            return PostgresHarness(cqrs_engine)
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, Protocol

import attrs
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import errors
from cqrs.config import Settings
from cqrs.events.model import START, Event, NewEvent, Position
from cqrs.events.registry import EventRegistry, event
from cqrs.store.event_store import EventStore
from cqrs.store.expected import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, StreamAppend
from cqrs.store.horizon import HORIZON
from cqrs.store.interface import EventStoreProtocol
from cqrs.testing.memory import InMemoryEventStore, MemoryLog

__all__ = [
    "EventStoreConformance",
    "MemoryHarness",
    "PostgresHarness",
    "StoreHarness",
    "registry",
    "wait_for_horizon",
]

registry = EventRegistry()
"""The registry of the suite's own events (kept apart from ``default_registry``)."""


@event("conformance.opened", registry=registry)
class Opened(Event):
    owner: str


@event("conformance.deposited", registry=registry)
class Deposited(Event):
    amount: Decimal


@event("conformance.noted", registry=registry)
class Noted(Event):
    note: Any = None


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Line:
    sku: str
    quantity: int
    price: Decimal


@event("conformance.rich", registry=registry)
class Rich(Event):
    amount: Decimal
    at: datetime
    ref: uuid.UUID
    colour: Colour
    lines: tuple[Line, ...]
    tags: tuple[str, ...] = ()


_secret_registry = EventRegistry()


@event("conformance.secret", registry=_secret_registry)
class Secret(Event):
    code: str


_v1_registry = EventRegistry()
_v2_registry = EventRegistry()


@event("conformance.renamed", version=1, registry=_v1_registry)
class RenamedV1(Event):
    name: str


@event("conformance.renamed", version=2, registry=_v2_registry)
class RenamedV2(Event):
    first: str
    last: str


@_v2_registry.upcaster("conformance.renamed", from_version=1)
def _split_name(data: dict[str, Any]) -> dict[str, Any]:
    # mutates its input on purpose: a store must hand upcasters a fresh payload each read
    first, _, last = data.pop("name").partition(" ")
    return {**data, "first": first, "last": last}


_loose_registry = EventRegistry()
_strict_registry = EventRegistry()


@event("conformance.flagged", registry=_loose_registry)
class FlaggedAsText(Event):
    paid: str
    qty: float


@event("conformance.flagged", version=2, registry=_strict_registry)
class Flagged(Event):
    paid: bool
    qty: int


@_strict_registry.upcaster("conformance.flagged", from_version=1)
def _flag_from_text(data: dict[str, Any]) -> dict[str, Any]:
    # raises on a value it does not know: a store must report it as a decode error
    return {"paid": {"yes": True, "no": False}[data["paid"]], "qty": data["qty"]}


class StoreHarness(Protocol):
    """What a backend hands the suite."""

    def store(
        self, registry: EventRegistry, settings: Settings | None = None
    ) -> EventStoreProtocol:
        """A store over the backend's database (every call: the same database)."""
        ...

    def transaction(self) -> AbstractContextManager[Any]:
        """A transaction: yields an executor, commits on exit, rolls back on error."""
        ...


class PostgresHarness:
    """The PostgreSQL store on ``engine``; executors are ``Session``s or ``Connection``s."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings | None = None,
        executor: Literal["session", "connection"] = "session",
    ) -> None:
        self.engine = engine
        self.settings = settings or Settings()
        self.executor = executor

    def store(
        self, registry: EventRegistry, settings: Settings | None = None
    ) -> EventStoreProtocol:
        return EventStore(registry=registry, settings=settings or self.settings)

    def reset(self) -> None:
        """Empty the event log: cheaper than a fresh schema, and DELETE beats TRUNCATE here
        (no new files to create and sync for a handful of rows)."""
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM events"))
            conn.execute(text("DELETE FROM streams"))

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Commit, then wait until ``read_all`` can see the commit.

        On a server shared with other work, someone else's open transaction can
        hold the read horizon back for a moment; the suite tests the store, not
        that timing, so each commit waits (bounded) for the horizon to pass it.
        """
        if self.executor == "connection":
            with self.engine.begin() as conn:
                yield conn
                xid = conn.execute(_OWN_XID).scalar()
        else:
            with Session(self.engine) as session, session.begin():
                yield session
                xid = session.execute(_OWN_XID).scalar()
        if xid is not None:
            wait_for_horizon(self.engine, int(xid))


_OWN_XID = text("SELECT pg_current_xact_id_if_assigned()::text")


def wait_for_horizon(engine: Engine, transaction_id: int, timeout: float = 30.0) -> None:
    """Block until ``transaction_id`` and every older transaction have ended."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while True:
            horizon = int(conn.execute(HORIZON).scalar_one())
            conn.rollback()
            if horizon > transaction_id:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"transaction {transaction_id} still not below the read horizon "
                    f"({horizon}) after {timeout}s: a long transaction is open on the server"
                )
            time.sleep(0.005)


class MemoryHarness:
    """:class:`~cqrs.testing.memory.InMemoryEventStore` stores sharing one log."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.log = MemoryLog()
        self.settings = settings or Settings()

    def store(
        self, registry: EventRegistry, settings: Settings | None = None
    ) -> EventStoreProtocol:
        return InMemoryEventStore(registry, settings or self.settings, log=self.log)

    def transaction(self) -> AbstractContextManager[Any]:
        return self.log.transaction()

    def reset(self) -> None:
        """Start over on an empty log."""
        self.log = MemoryLog()


_hostile_registry = EventRegistry()
"""Events whose stored type names no store may send (NUL, lone surrogate, invisible, 10 MB)."""


def _hostile_event(name: str) -> type[Event]:
    cls = type("Hostile", (Event,), {"__annotations__": {"n": "int"}})
    return event(name, registry=_hostile_registry)(cls)


_NUL_TYPE = _hostile_event("bad\x00type")
_SURROGATE_TYPE = _hostile_event("bad\ud800type")
_INVISIBLE_TYPE = _hostile_event("\u200b\u200c")
_HUGE_TYPE = _hostile_event("t" * 10_000_000)

_HUGE = "x" * 10_000_000


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


Call = Callable[[StoreHarness, EventStore, Any], object]


def _append(stream_id: Any = "s-1", events: Any = None, **kw: Any) -> Call:
    return lambda h, store, tx: store.append(
        tx, stream_id, [Noted("x")] if events is None else events, **kw
    )


def _append_hostile(cls: type[Event]) -> Call:
    return lambda h, store, tx: h.store(_hostile_registry).append(tx, "s-1", [cls(1)])  # type: ignore[call-arg]


_HOSTILE: list[Any] = [
    # stream ids
    pytest.param(_append("s-\ud800"), errors.InvalidStreamId, id="id-surrogate"),
    pytest.param(_append("\u200b\u200d"), errors.InvalidStreamId, id="id-zero-width"),
    pytest.param(_append("\ufeff"), errors.InvalidStreamId, id="id-bom"),
    pytest.param(_append("\u3000\u00a0"), errors.InvalidStreamId, id="id-unicode-blanks"),
    pytest.param(_append("s-\x1b[0m"), errors.InvalidStreamId, id="id-control"),
    pytest.param(_append(_HUGE), errors.InvalidStreamId, id="id-10mb"),
    pytest.param(_append("s-" + "\U0001f600" * 199), errors.InvalidStreamId, id="id-bytes"),
    # stream types
    pytest.param(_append(stream_type="a\x00b"), errors.InvalidTypeName, id="stype-nul"),
    pytest.param(_append(stream_type="\udfff"), errors.InvalidTypeName, id="stype-surrogate"),
    pytest.param(_append(stream_type="\u2060"), errors.InvalidTypeName, id="stype-invisible"),
    pytest.param(_append(stream_type=_HUGE), errors.InvalidTypeName, id="stype-10mb"),
    pytest.param(_append(stream_type="t" * 201), errors.InvalidTypeName, id="stype-201"),
    pytest.param(_append(stream_type=7), errors.InvalidTypeName, id="stype-int"),
    # event types
    pytest.param(_append_hostile(_NUL_TYPE), errors.InvalidTypeName, id="etype-nul"),
    pytest.param(_append_hostile(_SURROGATE_TYPE), errors.InvalidTypeName, id="etype-surrogate"),
    pytest.param(_append_hostile(_INVISIBLE_TYPE), errors.InvalidTypeName, id="etype-invisible"),
    pytest.param(_append_hostile(_HUGE_TYPE), errors.InvalidTypeName, id="etype-10mb"),
    # payloads and metadata
    pytest.param(_append(events=[Noted(_nested(500))]), errors.PayloadTooDeep, id="data-deep"),
    pytest.param(_append(events=[Noted(_cycle())]), errors.PayloadTooDeep, id="data-cycle"),
    pytest.param(_append(events=[Noted("\ud800")]), errors.SerializationError, id="data-surr"),
    pytest.param(
        _append(events=[Noted({"\udc80": 1})]), errors.SerializationError, id="data-key-surr"
    ),
    pytest.param(_append(metadata=[("a", 1)]), errors.InvalidMetadata, id="meta-list"),
    pytest.param(_append(metadata="a=1"), errors.InvalidMetadata, id="meta-str"),
    pytest.param(_append(metadata={1: "x"}), errors.InvalidMetadata, id="meta-int-key"),
    pytest.param(_append(metadata={"k": "\ud800"}), errors.InvalidMetadata, id="meta-surr"),
    pytest.param(_append(metadata={"\ud800": 1}), errors.InvalidMetadata, id="meta-key-surr"),
    pytest.param(
        _append(metadata={"k": [{"j": "\udbff"}]}), errors.InvalidMetadata, id="meta-deep-surr"
    ),
    pytest.param(_append(metadata={"k": _nested(500)}), errors.PayloadTooDeep, id="meta-deep"),
    pytest.param(_append(metadata={"k": _cycle()}), errors.PayloadTooDeep, id="meta-cycle"),
    pytest.param(
        _append(events=[NewEvent(Noted("x"), metadata=["a"])]),  # type: ignore[arg-type]
        errors.InvalidMetadata,
        id="own-meta-list",
    ),
    pytest.param(_append(events=5), errors.InvalidInput, id="events-int"),
    pytest.param(_append(events="abc"), errors.InvalidInput, id="events-str"),
    pytest.param(_append(events={"a": Noted(1)}), errors.InvalidInput, id="events-dict"),
    # versions
    pytest.param(_append(expected_version=2**31 - 1), errors.StreamFull, id="version-room"),
    # reads
    pytest.param(lambda h, s, tx: s.read_stream(tx, "a\x00"), errors.InvalidStreamId, id="rs-nul"),
    pytest.param(lambda h, s, tx: s.read_stream(tx, 5), errors.InvalidStreamId, id="rs-int"),
    pytest.param(lambda h, s, tx: s.read_stream(tx, None), errors.InvalidStreamId, id="rs-none"),
    pytest.param(lambda h, s, tx: s.read_stream(tx, "\ud800"), errors.InvalidStreamId, id="rs-sur"),
    pytest.param(lambda h, s, tx: s.read_stream(tx, _HUGE), errors.InvalidStreamId, id="rs-10mb"),
    pytest.param(
        lambda h, s, tx: s.read_stream(tx, "s-1", from_version="1"),
        errors.InvalidReadRange,
        id="rs-from-str",
    ),
    pytest.param(
        lambda h, s, tx: s.read_stream(tx, "s-1", from_version=-1),
        errors.InvalidReadRange,
        id="rs-from-negative",
    ),
    pytest.param(
        lambda h, s, tx: s.read_stream(tx, "s-1", to_version=2**31),
        errors.InvalidReadRange,
        id="rs-to-overflow",
    ),
    pytest.param(
        lambda h, s, tx: s.read_stream(tx, "s-1", from_version=True),
        errors.InvalidReadRange,
        id="rs-from-bool",
    ),
    pytest.param(lambda h, s, tx: s.read_all(tx, limit=-1), errors.InvalidReadRange, id="ra-neg"),
    pytest.param(lambda h, s, tx: s.read_all(tx, limit=0), errors.InvalidReadRange, id="ra-zero"),
    pytest.param(
        lambda h, s, tx: s.read_all(tx, limit=10**12), errors.InvalidReadRange, id="ra-absurd"
    ),
    pytest.param(lambda h, s, tx: s.read_all(tx, limit="9"), errors.InvalidReadRange, id="ra-str"),
    pytest.param(
        lambda h, s, tx: s.read_all(tx, after="1:2"), errors.InvalidReadRange, id="ra-tok"
    ),
    pytest.param(
        lambda h, s, tx: s.read_all(tx, after=Position(-1, 0)),
        errors.InvalidReadRange,
        id="ra-negative-xid",
    ),
    pytest.param(
        lambda h, s, tx: s.read_all(tx, after=Position(0, 2**63)),
        errors.InvalidReadRange,
        id="ra-huge-position",
    ),
    pytest.param(
        lambda h, s, tx: s.archive(tx, "s-1", archived="no"),
        errors.InvalidInput,
        id="archive-not-bool",
    ),
    pytest.param(
        lambda h, s, tx: s.read_all(tx, types="conformance.noted"),
        errors.InvalidReadRange,
        id="ra-types-str",
    ),
    pytest.param(
        lambda h, s, tx: s.read_all(tx, types=["a\x00"]), errors.InvalidTypeName, id="ra-types-nul"
    ),
    pytest.param(
        lambda h, s, tx: s.read_all(tx, types=[5]), errors.InvalidTypeName, id="ra-types-int"
    ),
    pytest.param(
        lambda h, s, tx: s.stream_info(tx, "a\x00"), errors.InvalidStreamId, id="info-nul"
    ),
    pytest.param(
        lambda h, s, tx: s.archive(tx, "\ud800"), errors.InvalidStreamId, id="archive-sur"
    ),
]


def _opened(n: int = 1) -> list[Event]:
    return [Opened(owner=f"owner-{i}") for i in range(n)]


class EventStoreConformance:
    """The shared contract; subclasses provide the ``store_harness`` fixture."""

    @pytest.fixture
    def h(self, store_harness: StoreHarness) -> StoreHarness:
        return store_harness

    @pytest.fixture
    def store(self, store_harness: StoreHarness) -> EventStoreProtocol:
        return store_harness.store(registry)

    def append(
        self,
        h: StoreHarness,
        store: EventStoreProtocol,
        stream_id: str,
        events: list[Any],
        **kw: Any,
    ) -> Any:
        with h.transaction() as tx:
            return store.append(tx, stream_id, events, **kw)

    def versions(self, h: StoreHarness, store: EventStoreProtocol, stream_id: str) -> list[int]:
        with h.transaction() as tx:
            return [e.version for e in store.read_stream(tx, stream_id)]

    # -- appending -------------------------------------------------------------

    def test_append_creates_stream_and_returns_recorded(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        result = self.append(h, store, "acct-1", [Opened("ann"), Deposited(Decimal("1.50"))])
        assert (result.stream_id, result.version, result.appended) == ("acct-1", 2, 2)
        assert [e.version for e in result.recorded] == [1, 2]
        assert result.position == result.recorded[-1].position
        with h.transaction() as tx:
            read = store.read_stream(tx, "acct-1")
        assert read == list(result.recorded)
        assert read[1].event == Deposited(Decimal("1.50"))
        assert {e.stream_type for e in read} == {"acct"}

    # -- appending to many streams ------------------------------------------------

    def test_append_many_writes_every_stream(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "acct-3", _opened())
        with h.transaction() as tx:
            results = store.append_many(
                tx,
                [
                    StreamAppend("acct-1", _opened(2), expected_version=NO_STREAM),
                    StreamAppend("acct-2", [], expected_version=NO_STREAM),
                    StreamAppend("acct-3", [Deposited(Decimal(1))], expected_version=1),
                ],
                metadata={"correlation_id": "c"},
            )
        assert [(r.stream_id, r.version, r.appended) for r in results] == [
            ("acct-1", 2, 2),
            ("acct-2", 0, 0),
            ("acct-3", 2, 1),
        ]
        assert self.versions(h, store, "acct-1") == [1, 2]
        assert self.versions(h, store, "acct-3") == [1, 2]
        with h.transaction() as tx:
            assert store.stream_info(tx, "acct-2") is None
            assert store.read_stream(tx, "acct-3")[1].metadata == {"correlation_id": "c"}

    def test_append_many_refuses_all_or_nothing(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "acct-1", _opened())
        self.append(h, store, "acct-2", _opened())
        with pytest.raises(errors.ConcurrencyError) as one, h.transaction() as tx:
            store.append_many(
                tx,
                [
                    StreamAppend("acct-9", _opened(), expected_version=NO_STREAM),
                    StreamAppend("acct-1", _opened(), expected_version=3),
                ],
            )
        assert (one.value.stream_id, one.value.actual) == ("acct-1", 1)
        with pytest.raises(errors.AppendRefused) as many, h.transaction() as tx:
            store.append_many(
                tx,
                [
                    StreamAppend("acct-1", _opened(), expected_version=NO_STREAM),
                    StreamAppend("acct-2", _opened(), expected_version=5),
                    StreamAppend("acct-9", _opened(), expected_version=NO_STREAM),
                ],
            )
        assert sorted(many.value.refusals) == ["acct-1", "acct-2"]
        assert self.versions(h, store, "acct-1") == [1]
        assert self.versions(h, store, "acct-2") == [1]
        with h.transaction() as tx:
            assert store.stream_info(tx, "acct-9") is None

    def test_append_many_refuses_the_same_stream_twice(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        with pytest.raises(errors.InvalidInput, match="appears twice"), h.transaction() as tx:
            store.append_many(
                tx, [StreamAppend("acct-1", _opened()), StreamAppend("acct-1", _opened())]
            )

    @pytest.mark.parametrize("expected", [ANY, NO_STREAM, 0])
    def test_new_stream_expectations_that_hold(
        self, h: StoreHarness, store: EventStoreProtocol, expected: ExpectedVersion | int
    ) -> None:
        assert self.append(h, store, "s-1", _opened(2), expected_version=expected).version == 2

    @pytest.mark.parametrize("expected", [STREAM_EXISTS, 1, 5])
    def test_new_stream_expectations_that_fail(
        self, h: StoreHarness, store: EventStoreProtocol, expected: ExpectedVersion | int
    ) -> None:
        with pytest.raises(errors.ConcurrencyError) as info:
            self.append(h, store, "s-1", _opened(), expected_version=expected)
        assert (info.value.stream_id, info.value.expected, info.value.actual) == (
            "s-1",
            expected,
            None,
        )
        with h.transaction() as tx:
            assert store.stream_info(tx, "s-1") is None

    @pytest.mark.parametrize("expected", [ANY, STREAM_EXISTS, 2])
    def test_existing_stream_expectations_that_hold(
        self, h: StoreHarness, store: EventStoreProtocol, expected: ExpectedVersion | int
    ) -> None:
        self.append(h, store, "s-1", _opened(2))
        result = self.append(h, store, "s-1", _opened(3), expected_version=expected)
        assert (result.version, result.appended) == (5, 3)
        assert self.versions(h, store, "s-1") == [1, 2, 3, 4, 5]

    @pytest.mark.parametrize("expected", [NO_STREAM, 0, 1, 3])
    def test_existing_stream_expectations_that_fail(
        self, h: StoreHarness, store: EventStoreProtocol, expected: ExpectedVersion | int
    ) -> None:
        self.append(h, store, "s-1", _opened(2))
        with pytest.raises(errors.ConcurrencyError) as info:
            self.append(h, store, "s-1", _opened(), expected_version=expected)
        err = info.value
        assert (err.stream_id, err.expected, err.actual) == ("s-1", expected, 2)
        assert "retry" in str(err) and err.code == "cqrs-concurrency"
        assert self.versions(h, store, "s-1") == [1, 2]

    def test_empty_append_checks_expectation_and_writes_nothing(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        assert self.append(h, store, "s-1", []).appended == 0
        with h.transaction() as tx:
            assert store.stream_info(tx, "s-1") is None
        with pytest.raises(errors.ConcurrencyError):
            self.append(h, store, "s-1", [], expected_version=STREAM_EXISTS)
        self.append(h, store, "s-1", _opened(2))
        result = self.append(h, store, "s-1", [], expected_version=2)
        assert (result.version, result.appended, result.recorded) == (2, 0, ())
        with pytest.raises(errors.ConcurrencyError) as info:
            self.append(h, store, "s-1", [], expected_version=NO_STREAM)
        assert info.value.actual == 2

    def test_stream_type_and_info(self, h: StoreHarness, store: EventStoreProtocol) -> None:
        self.append(h, store, "order-7", _opened())
        self.append(h, store, "x-1", _opened(), stream_type="Custom")
        self.append(h, store, "x-1", _opened(), stream_type="Ignored")
        with h.transaction() as tx:
            order = store.stream_info(tx, "order-7")
            custom = store.stream_info(tx, "x-1")
            assert store.stream_info(tx, "missing-1") is None
            read = store.read_stream(tx, "x-1")
        assert order is not None and custom is not None
        assert (order.stream_id, order.stream_type, order.version, order.archived) == (
            "order-7",
            "order",
            1,
            False,
        )
        assert order.created_at.tzinfo is not None
        assert (custom.stream_type, custom.version) == ("Custom", 2)
        assert [e.stream_type for e in read] == ["Custom", "Custom"]

    def test_metadata_round_trip(self, h: StoreHarness, store: EventStoreProtocol) -> None:
        correlation, causation = str(uuid.uuid4()), str(uuid.uuid4())
        own = NewEvent(Opened("ann"), metadata={"user": "u-1", "causation_id": "own"})
        result = self.append(
            h,
            store,
            "s-1",
            [own, Opened("bob")],
            metadata={"correlation_id": correlation, "causation_id": causation},
        )
        with h.transaction() as tx:
            first, second = store.read_stream(tx, "s-1")
        assert first.metadata == {
            "correlation_id": correlation,
            "causation_id": "own",
            "user": "u-1",
        }
        assert (second.correlation_id, second.causation_id) == (correlation, causation)
        assert first.event_id == own.event_id
        assert [dict(e.metadata) for e in result.recorded] == [
            dict(first.metadata),
            dict(second.metadata),
        ]

    # -- all or nothing ----------------------------------------------------------

    def _assert_untouched(self, h: StoreHarness, store: EventStoreProtocol) -> None:
        assert self.versions(h, store, "s-1") == [1]
        with h.transaction() as tx:
            assert [e.stream_id for e in store.read_all(tx)] == ["s-1"]

    def test_unserialisable_payload_writes_nothing(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "s-1", _opened())
        batch = [Noted("fine"), Noted({1, 2}), Noted("fine")]
        with pytest.raises(errors.SerializationError):
            self.append(h, store, "s-1", batch)
        with pytest.raises(errors.SerializationError):
            self.append(h, store, "s-1", [Noted(float("nan"))])
        with pytest.raises(errors.SerializationError):
            self.append(h, store, "s-1", [Noted("x")], metadata={"bad": object()})
        self._assert_untouched(h, store)

    def test_oversized_payload_writes_nothing(self, h: StoreHarness) -> None:
        store = h.store(registry, Settings(max_payload_bytes=200))
        self.append(h, store, "s-1", _opened())
        with pytest.raises(errors.PayloadTooLarge) as info:
            self.append(h, store, "s-1", [Noted("a"), Noted("x" * 300), Noted("b")])
        assert (info.value.event_type, info.value.limit) == ("conformance.noted", 200)
        assert info.value.size > 300
        with pytest.raises(errors.PayloadTooLarge):
            self.append(h, store, "s-1", [Noted("a")], metadata={"blob": "y" * 300})
        self._assert_untouched(h, store)

    @pytest.mark.parametrize(
        "bad",
        [
            pytest.param(NewEvent(Noted("b"), event_id="not-a-uuid"), id="str-id"),  # type: ignore[arg-type]
            pytest.param(NewEvent(Noted("b"), event_id=7), id="int-id"),  # type: ignore[arg-type]
            pytest.param({"not": "an event"}, id="dict"),
            pytest.param(Opened, id="class"),
        ],
    )
    def test_bad_item_in_the_middle_writes_nothing(
        self, h: StoreHarness, store: EventStoreProtocol, bad: Any
    ) -> None:
        self.append(h, store, "s-1", _opened())
        with pytest.raises(errors.InvalidInput):
            self.append(h, store, "s-1", [NewEvent(Noted("a")), bad, NewEvent(Noted("c"))])
        self._assert_untouched(h, store)

    def test_unregistered_event_class_writes_nothing(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "s-1", _opened())
        with pytest.raises(errors.EventRegistrationError):
            self.append(h, store, "s-1", [Noted("a"), Secret("s")])
        self._assert_untouched(h, store)

    def test_same_id_twice_in_one_batch_is_refused(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "s-1", _opened())
        twice = uuid.uuid4()
        with pytest.raises(errors.InvalidInput):
            self.append(h, store, "s-1", [NewEvent(Noted("a"), twice), NewEvent(Noted("b"), twice)])
        self._assert_untouched(h, store)

    @pytest.mark.parametrize("bad", ["x", -1, True, None, 2**40])
    def test_bad_expected_version_is_refused(
        self, h: StoreHarness, store: EventStoreProtocol, bad: Any
    ) -> None:
        self.append(h, store, "s-1", _opened())
        with pytest.raises(errors.InvalidInput):
            self.append(h, store, "s-1", _opened(), expected_version=bad)
        self._assert_untouched(h, store)

    def test_single_event_not_in_a_list_is_refused(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "s-1", _opened())
        with pytest.raises(errors.InvalidInput, match=r"\[ \]"):
            self.append(h, store, "s-1", Opened("x"))  # type: ignore[arg-type]
        self._assert_untouched(h, store)

    @pytest.mark.parametrize(
        "stream_id", ["", "   ", "x" * 201, "a\x00b", 17, None, b"bytes"], ids=repr
    )
    def test_invalid_stream_ids(
        self, h: StoreHarness, store: EventStoreProtocol, stream_id: Any
    ) -> None:
        with pytest.raises(errors.InvalidStreamId) as info:
            self.append(h, store, stream_id, _opened())
        assert "max_id_length" in str(info.value)
        with h.transaction() as tx:
            assert store.read_all(tx) == []

    @pytest.mark.parametrize(("call", "error"), _HOSTILE)
    def test_bad_input_is_refused_before_anything_is_sent(
        self, h: StoreHarness, store: EventStore, call: Call, error: type[errors.CqrsError]
    ) -> None:
        """Each is a typed error, raised before the database is asked anything: the same
        transaction goes on (PostgreSQL would refuse every later statement of a
        transaction whose statement failed) and commits the rest of its work."""
        self.append(h, store, "s-1", _opened())
        with h.transaction() as tx:
            with pytest.raises(error) as info:
                call(h, store, tx)
            store.append(tx, "s-1", [Noted("after")], expected_version=1)
        assert isinstance(info.value, errors.CqrsError)
        assert len(str(info.value)) < 2000  # a 10 MB input is not echoed back
        assert self.versions(h, store, "s-1") == [1, 2]
        with h.transaction() as tx:
            assert [e.stream_id for e in store.read_all(tx)] == ["s-1", "s-1"]

    def test_a_generator_of_events_is_read_once(self, h: StoreHarness, store: EventStore) -> None:
        result = self.append(h, store, "s-1", (Noted(i) for i in range(3)))  # type: ignore[arg-type]
        assert result.appended == 3
        with h.transaction() as tx:
            assert [e.event for e in store.read_stream(tx, "s-1")] == [Noted(0), Noted(1), Noted(2)]

    def test_limits_come_from_settings(self, h: StoreHarness) -> None:
        tight = Settings(max_type_length=20, max_nesting_depth=3, max_read_limit=2)
        store = h.store(registry, tight)
        self.append(h, store, "s-1", _opened(3), stream_type="short")
        with pytest.raises(errors.InvalidTypeName, match="max_type_length"):
            self.append(h, store, "s-1", _opened(), stream_type="t" * 21)
        self.append(h, store, "s-1", [Noted([["x"]])])
        with pytest.raises(errors.PayloadTooDeep, match="max_nesting_depth"):
            self.append(h, store, "s-1", [Noted([[["x"]]])])
        with h.transaction() as tx:
            assert len(store.read_all(tx, limit=2)) == 2
            with pytest.raises(errors.InvalidReadRange, match="max_read_limit"):
                store.read_all(tx, limit=3)

    def test_rolled_back_transaction_leaves_nothing(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "s-1", _opened())
        with pytest.raises(RuntimeError), h.transaction() as tx:
            store.append(tx, "s-1", _opened(2), expected_version=1)
            store.append(tx, "s-2", _opened(), expected_version=NO_STREAM)
            store.archive(tx, "s-1")
            assert [e.version for e in store.read_stream(tx, "s-1")] == [1, 2, 3]
            raise RuntimeError("roll back")
        self._assert_untouched(h, store)
        with h.transaction() as tx:
            info = store.stream_info(tx, "s-1")
            assert info is not None and not info.archived
            assert store.stream_info(tx, "s-2") is None
        assert self.append(h, store, "s-2", _opened(), expected_version=NO_STREAM).version == 1

    def test_writes_of_one_transaction_see_each_other(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        with h.transaction() as tx:
            store.append(tx, "s-1", _opened(), expected_version=NO_STREAM)
            result = store.append(tx, "s-1", _opened(), expected_version=1)
            assert result.version == 2
            info = store.stream_info(tx, "s-1")
            assert info is not None and info.version == 2
            assert store.read_all(tx) == []  # read_all shows committed events only
        with h.transaction() as tx:
            assert [e.version for e in store.read_all(tx)] == [1, 2]

    # -- idempotency -------------------------------------------------------------

    def test_resending_the_same_ids_is_a_no_op(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        batch = [NewEvent(Opened("ann")), NewEvent(Deposited(Decimal(3)))]
        first = self.append(h, store, "s-1", batch, expected_version=NO_STREAM)
        again = self.append(h, store, "s-1", batch, expected_version=NO_STREAM)
        assert (again.version, again.appended, again.recorded) == (2, 0, ())
        assert again.position == first.position
        self.append(h, store, "s-1", _opened())
        later = self.append(h, store, "s-1", batch)
        assert (later.version, later.appended, later.position) == (2, 0, first.position)
        assert self.versions(h, store, "s-1") == [1, 2, 3]

    def test_same_id_in_another_stream_is_a_new_event(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        batch = [NewEvent(Opened("ann"))]
        self.append(h, store, "s-1", batch)
        assert self.append(h, store, "s-2", batch).appended == 1

    def test_partial_resend_raises_duplicate(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        stored = NewEvent(Opened("ann"))
        self.append(h, store, "s-1", [stored])
        fresh = NewEvent(Opened("bob"))
        with pytest.raises(errors.DuplicateEventError) as info:
            self.append(h, store, "s-1", [stored, fresh])
        assert info.value.event_ids == [str(stored.event_id)]
        assert info.value.stream_id == "s-1"
        self._assert_untouched(h, store)

    # -- archiving ---------------------------------------------------------------

    @pytest.mark.parametrize("expected", [ANY, STREAM_EXISTS, 1, 0, 5])
    def test_archived_stream_takes_no_events(
        self, h: StoreHarness, store: EventStoreProtocol, expected: ExpectedVersion | int
    ) -> None:
        self.append(h, store, "s-1", _opened())
        with h.transaction() as tx:
            store.archive(tx, "s-1")
        with pytest.raises(errors.StreamArchived) as info:
            self.append(h, store, "s-1", _opened(), expected_version=expected)
        assert info.value.stream_id == "s-1"
        self._assert_untouched(h, store)
        with h.transaction() as tx:
            arch = store.stream_info(tx, "s-1")
            assert arch is not None and arch.archived
            store.archive(tx, "s-1", archived=False)
        assert self.append(h, store, "s-1", _opened(), expected_version=1).version == 2

    def test_archive_missing_stream(self, h: StoreHarness, store: EventStoreProtocol) -> None:
        with pytest.raises(errors.StreamNotFound), h.transaction() as tx:
            store.archive(tx, "nope-1")

    def test_resend_to_archived_stream_is_still_a_no_op(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        batch = [NewEvent(Opened("ann"))]
        self.append(h, store, "s-1", batch)
        with h.transaction() as tx:
            store.archive(tx, "s-1")
        assert self.append(h, store, "s-1", batch).appended == 0

    # -- reading -----------------------------------------------------------------

    def test_read_stream_ranges(self, h: StoreHarness, store: EventStoreProtocol) -> None:
        self.append(h, store, "s-1", _opened(5))
        self.append(h, store, "s-2", _opened(2))
        with h.transaction() as tx:
            assert [e.version for e in store.read_stream(tx, "s-1", from_version=3)] == [3, 4, 5]
            assert [e.version for e in store.read_stream(tx, "s-1", to_version=2)] == [1, 2]
            ranged = store.read_stream(tx, "s-1", from_version=2, to_version=4)
            assert [e.version for e in ranged] == [2, 3, 4]
            assert store.read_stream(tx, "s-1", from_version=6) == []
            assert store.read_stream(tx, "s-1", from_version=4, to_version=3) == []
            assert {e.stream_id for e in store.read_stream(tx, "s-1")} == {"s-1"}

    def test_read_missing_stream(self, h: StoreHarness, store: EventStoreProtocol) -> None:
        with pytest.raises(errors.StreamNotFound) as info, h.transaction() as tx:
            store.read_stream(tx, "ghost-1")
        assert info.value.stream_id == "ghost-1"

    def test_read_all_order_limit_after_types(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "a-1", [Opened("a"), Deposited(Decimal(1))])
        self.append(h, store, "b-1", [Opened("b")])
        self.append(h, store, "a-1", [Deposited(Decimal(2)), Noted("n")])
        with h.transaction() as tx:
            everything = store.read_all(tx)
            assert [(e.stream_id, e.version) for e in everything] == [
                ("a-1", 1),
                ("a-1", 2),
                ("b-1", 1),
                ("a-1", 3),
                ("a-1", 4),
            ]
            positions = [e.position for e in everything]
            assert positions == sorted(positions) and len(set(positions)) == 5
            assert store.read_all(tx, limit=2) == everything[:2]
            assert store.read_all(tx, after=everything[1].position, limit=2) == everything[2:4]
            assert store.read_all(tx, after=everything[-1].position) == []
            assert store.read_all(tx, after=START) == everything
            deposits = store.read_all(tx, types=["conformance.deposited"])
            assert [e.event for e in deposits] == [Deposited(Decimal(1)), Deposited(Decimal(2))]
            mixed = store.read_all(tx, types=["conformance.noted", "conformance.opened"], limit=2)
            assert [e.event_type for e in mixed] == ["conformance.opened", "conformance.opened"]
            assert store.read_all(tx, types=[]) == []
            assert store.head(tx) == everything[-1].position

    def test_paging_read_all_sees_every_event_once(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        for i in range(7):
            self.append(h, store, f"p-{i % 3}", _opened(i % 3 + 1))
        seen: list[Position] = []
        cursor = START
        with h.transaction() as tx:
            while page := store.read_all(tx, after=cursor, limit=2):
                seen.extend(e.position for e in page)
                cursor = page[-1].position
        assert len(seen) == len(set(seen)) == sum(i % 3 + 1 for i in range(7))
        assert seen == sorted(seen)

    def test_unknown_event_type_on_read(self, h: StoreHarness, store: EventStoreProtocol) -> None:
        writer = h.store(_secret_registry)
        self.append(h, store, "s-1", _opened())
        result = self.append(h, writer, "s-1", [Secret("x")])
        readers: list[Callable[[Any], object]] = [
            lambda tx: store.read_stream(tx, "s-1"),
            lambda tx: store.read_all(tx),
        ]
        for read in readers:
            with pytest.raises(errors.UnknownEventType) as info, h.transaction() as tx:
                read(tx)
            err = info.value
            assert (err.event_type, err.stream_id) == ("conformance.secret", "s-1")
            assert err.position == result.position and err.version == 2
            assert isinstance(err, errors.SerializationError)
        with h.transaction() as tx:
            assert len(store.read_all(tx, types=["conformance.opened"])) == 1
            assert store.read_stream(tx, "s-1", to_version=1)[0].event == Opened("owner-0")

    def test_upcasters_apply_on_read(self, h: StoreHarness) -> None:
        old, new = h.store(_v1_registry), h.store(_v2_registry)
        self.append(h, old, "person-1", [RenamedV1("Ada Lovelace")])
        with h.transaction() as tx:
            (stored,) = new.read_stream(tx, "person-1")
            assert new.read_all(tx)[0].event == stored.event
        assert stored.event == RenamedV2(first="Ada", last="Lovelace")
        assert stored.schema_version == 1
        self.append(h, new, "person-1", [RenamedV2("Grace", "Hopper")])
        with h.transaction() as tx:
            assert [e.schema_version for e in new.read_stream(tx, "person-1")] == [1, 2]
            with pytest.raises(errors.SerializationError, match="newer than"):
                old.read_stream(tx, "person-1")

    def test_a_stored_value_is_never_changed_to_fit(self, h: StoreHarness) -> None:
        writer, reader = h.store(_loose_registry), h.store(_strict_registry)
        first = self.append(h, writer, "flag-1", [FlaggedAsText("yes", 3)])
        bad = self.append(h, writer, "flag-1", [FlaggedAsText("no", 3.7)])
        self.append(h, writer, "flag-1", [FlaggedAsText("maybe", 1)])
        readers: list[Callable[[Any], object]] = [
            lambda tx: reader.read_stream(tx, "flag-1"),
            lambda tx: reader.read_all(tx, after=first.position),
        ]
        for read in readers:
            with pytest.raises(errors.EventDecodeError) as info, h.transaction() as tx:
                read(tx)
            err = info.value
            assert (err.stream_id, err.version, err.position) == ("flag-1", 2, bad.position)
            assert err.field == "qty" and isinstance(err, errors.SerializationError)
        with h.transaction() as tx:
            assert [e.event for e in reader.read_all(tx, limit=1)] == [Flagged(True, 3)]
            # stepping over it, the reader meets the next bad row: an upcaster that raised
            with pytest.raises(errors.EventDecodeError, match="raised KeyError") as info:
                reader.read_all(tx, after=bad.position)
            assert info.value.version == 3 and info.value.position is not None
            assert reader.read_all(tx, after=info.value.position) == []

    def test_an_event_holding_a_wrong_type_writes_nothing(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        with pytest.raises(errors.EventEncodeError) as info, h.transaction() as tx:
            store.append(tx, "s-1", [Opened("ok"), Opened(owner=123)])  # type: ignore[arg-type]
        assert info.value.field == "owner"
        with h.transaction() as tx:
            assert store.stream_info(tx, "s-1") is None

    def test_codec_round_trip_through_the_store(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        rich = Rich(
            amount=Decimal("12345678901234567890.000000001"),
            at=datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=timezone(timedelta(hours=5))),
            ref=uuid.uuid4(),
            colour=Colour.BLUE,
            lines=(Line("a", 1, Decimal("0.10")), Line("b", 2, Decimal("-3"))),
            tags=("x", "y"),
        )
        self.append(h, store, "rich-1", [rich])
        with h.transaction() as tx:
            (read,) = store.read_stream(tx, "rich-1")
        assert read.event == rich
        assert isinstance(read.event, Rich)
        assert read.event.at.utcoffset() == timedelta(hours=5)
        assert isinstance(read.event.lines, tuple) and isinstance(read.event.lines[0], Line)
        assert read.recorded_at.tzinfo is not None
        assert abs(read.recorded_at - datetime.now(UTC)) < timedelta(hours=1)

    # -- concurrency -------------------------------------------------------------

    def test_one_winner_per_expected_version(
        self, h: StoreHarness, store: EventStoreProtocol
    ) -> None:
        self.append(h, store, "race-1", _opened())
        writers = 4
        barrier = threading.Barrier(writers)
        outcomes: list[object] = []

        def write(i: int) -> None:
            barrier.wait(timeout=30)
            try:
                with h.transaction() as tx:
                    outcomes.append(store.append(tx, "race-1", [Noted(i)], expected_version=1))
            except errors.ConcurrencyError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        losers = [o for o in outcomes if isinstance(o, errors.ConcurrencyError)]
        assert len(outcomes) == writers and len(losers) == writers - 1
        assert {(e.expected, e.actual) for e in losers} == {(1, 2)}
        assert self.versions(h, store, "race-1") == [1, 2]
