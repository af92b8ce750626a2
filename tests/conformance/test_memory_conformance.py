"""Internal: ``InMemoryEventStore`` passes the same conformance suite as PostgreSQL."""

from __future__ import annotations

import pytest

from cqrs import Event, EventRegistry, EventStore, event
from cqrs.errors import InvalidInput
from cqrs.store import EventStoreProtocol
from cqrs.testing import EventStoreConformance, InMemoryEventStore
from cqrs.testing.conformance import MemoryHarness

registry = EventRegistry()


@event("memory_double.ping", registry=registry)
class Ping(Event):
    n: int


class TestInMemoryEventStore(EventStoreConformance):
    @pytest.fixture
    def store_harness(self) -> MemoryHarness:
        return MemoryHarness()


def test_any_executor_is_its_own_transaction() -> None:
    store = InMemoryEventStore(registry)
    assert store.append(None, "p-1", [Ping(1)]).version == 1
    assert [e.event for e in store.read_all(object())] == [Ping(1)]


def test_transaction_misuse_is_refused() -> None:
    store = InMemoryEventStore(registry)
    other = InMemoryEventStore(registry)
    with store.transaction() as tx:
        with pytest.raises(InvalidInput, match="already holds"):
            store.append(None, "p-1", [Ping(1)])
        with pytest.raises(InvalidInput, match="another MemoryLog"):
            other.append(tx, "p-1", [Ping(1)])
    with pytest.raises(InvalidInput, match="already ended"):
        store.append(tx, "p-1", [Ping(1)])
    assert store.stream_info(None, "p-1") is None


def test_horizon_and_head_follow_transactions() -> None:
    store = InMemoryEventStore(registry)
    assert store.horizon(None) == 1
    with store.transaction() as tx:
        result = store.append(tx, "p-1", [Ping(1), Ping(2)])
        assert store.horizon(tx) == result.position.transaction_id
        assert store.head(tx) == result.position
    assert store.horizon(None) == result.position.transaction_id + 1


def test_both_stores_implement_the_protocol() -> None:
    """A method added to ``EventStore`` belongs in ``EventStoreProtocol`` (or is PostgreSQL's
    own), and ``InMemoryEventStore`` implements every member of the protocol itself."""
    # rows of cqrs.store.rows (the memory store decodes its own); COPY is PostgreSQL's
    postgres_only = {"decode", "import_streams"}
    public = {
        name
        for name, value in vars(EventStore).items()
        if callable(value) and not name.startswith("_")
    }
    members = {n for n in vars(EventStoreProtocol) if not n.startswith("_")}
    assert public - postgres_only <= members
    assert isinstance(InMemoryEventStore(registry), EventStoreProtocol)
    assert EventStore not in InMemoryEventStore.__mro__
    assert {m for m in members if callable(getattr(EventStore, m, None))} <= set(
        vars(InMemoryEventStore)
    )
