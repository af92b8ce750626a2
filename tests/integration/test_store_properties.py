"""Internal: random append sequences against a plain in-memory model.

After every step the store's ``read_stream`` and ``read_all`` must agree with the
model, and each append must succeed or fail exactly as the model predicts. Runs
on PostgreSQL (both layouts; one schema per test, emptied per example) and on the
in-memory double.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqrs import ANY, NO_STREAM, STREAM_EXISTS, Event, EventRegistry, NewEvent, Settings, event
from cqrs.errors import ConcurrencyError, StreamNotFound
from cqrs.testing import isolated_schema
from cqrs.testing.conformance import MemoryHarness, PostgresHarness

registry = EventRegistry()
STREAMS = ("a-1", "a-2", "b-1")
MODES = ("any", "no_stream", "zero", "exists", "right", "wrong", "resend")


@event("property.item", registry=registry)
class Item(Event):
    label: str


@pytest.fixture(params=["range", "hash", "memory"])
def harness(request: pytest.FixtureRequest, cqrs_database_url: str) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryHarness()
        return
    layout = Settings(partitioning=request.param, hash_partitions=4)
    with isolated_schema(cqrs_database_url, layout) as engine:
        yield PostgresHarness(engine, layout)


operation = st.tuples(
    st.sampled_from(STREAMS), st.sampled_from(MODES), st.integers(0, 4), st.integers(1, 3)
)


class Model:
    def __init__(self) -> None:
        self.streams: dict[str, list[tuple[uuid.UUID, str]]] = {}
        self.log: list[uuid.UUID] = []
        self.last: tuple[str, list[NewEvent[Item]], int] | None = None

    def expected_for(self, stream: str, mode: str, offset: int) -> Any:
        actual = len(self.streams[stream]) if stream in self.streams else 0
        return {
            "any": ANY,
            "no_stream": NO_STREAM,
            "zero": 0,
            "exists": STREAM_EXISTS,
            "right": actual,
            "wrong": actual + offset,
        }[mode]

    def accepts(self, stream: str, expected: Any) -> bool:
        actual = len(self.streams[stream]) if stream in self.streams else None
        if expected is ANY:
            return True
        if expected is STREAM_EXISTS:
            return actual is not None
        if expected is NO_STREAM or expected == 0:
            return actual is None
        return bool(expected == actual)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, max_size=12))
def test_appends_agree_with_a_model(harness: Any, ops: list[tuple[str, str, int, int]]) -> None:
    harness.reset()
    store = harness.store(registry)
    model = Model()
    for step, (stream, mode, size, offset) in enumerate(ops):
        if mode == "resend" and model.last is not None:
            sid, batch, version = model.last
            with harness.transaction() as tx:
                result = store.append(tx, sid, batch, expected_version=version + offset)
            assert (result.appended, result.version) == (0, version)
        elif mode != "resend":
            expected = model.expected_for(stream, mode, offset)
            batch = [NewEvent(Item(f"{step}.{i}")) for i in range(size)]
            actual = len(model.streams[stream]) if stream in model.streams else None
            if model.accepts(stream, expected):
                with harness.transaction() as tx:
                    result = store.append(tx, stream, batch, expected_version=expected)
                if batch:
                    entries = model.streams.setdefault(stream, [])
                    entries.extend((e.event_id, e.event.label) for e in batch)
                    model.log.extend(e.event_id for e in batch)
                    model.last = (stream, batch, len(entries))
                assert (result.appended, result.version) == (size, actual_after(model, stream))
            else:
                with pytest.raises(ConcurrencyError) as info, harness.transaction() as tx:
                    store.append(tx, stream, batch, expected_version=expected)
                assert (info.value.expected, info.value.actual) == (expected, actual)
        check(harness, store, model)


def actual_after(model: Model, stream: str) -> int:
    return len(model.streams.get(stream, ()))


def check(harness: Any, store: Any, model: Model) -> None:
    with harness.transaction() as tx:
        for stream in STREAMS:
            if stream not in model.streams:
                with pytest.raises(StreamNotFound):
                    store.read_stream(tx, stream)
                continue
            events = store.read_stream(tx, stream)
            assert [(e.event_id, e.event.label) for e in events] == model.streams[stream]
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            info = store.stream_info(tx, stream)
            assert info.version == len(events)
    with harness.transaction() as tx:
        assert [e.event_id for e in store.read_all(tx)] == model.log
