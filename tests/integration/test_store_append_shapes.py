"""Internal: the three shapes of the append statement store the same rows.

``EventStore.append`` sends one event as scalar parameters, several as JSON
arrays, and batches over ``sql.JSON_ARRAY_LIMIT`` characters as ``text[]``
(jsonb caps one document at 256 MB). Each shape, under every expectation,
must store and return exactly the same thing, and refuse the same conflicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from cqrs import ANY, NO_STREAM, STREAM_EXISTS, Event, EventRegistry, EventStore, NewEvent
from cqrs import event as declare
from cqrs.errors import ConcurrencyError
from cqrs.store import sql

registry = EventRegistry()


@declare("shape.noted", registry=registry)
class Noted(Event):
    text: str
    amount: Decimal
    tags: tuple[str, ...] = ()


TRICKY = 'quote " backslash \\ brace { } comma , ünï "nested" [1,2]'


@pytest.fixture(params=["one", "many", "huge"])
def shape(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "huge":
        monkeypatch.setattr(sql, "JSON_ARRAY_LIMIT", 0)
    return str(request.param)


@pytest.fixture
def sent(log_engine: Engine) -> Iterator[list[str]]:
    """The SQL text of every statement sent on ``log_engine``."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(log_engine, "before_cursor_execute", record)
    yield seen
    event.remove(log_engine, "before_cursor_execute", record)


def batch(shape: str, start: int) -> list[Event | NewEvent[Event]]:
    count = 1 if shape == "one" else 3
    return [
        NewEvent(
            Noted(f"{TRICKY} #{start + k}", Decimal("0.10") * (start + k), ("a", TRICKY)),
            metadata={"note": TRICKY, "k": start + k},
        )
        for k in range(count)
    ]


def stored(log_engine: Engine, stream_id: str) -> list[tuple[Any, ...]]:
    with log_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT version, event_type, schema_version, data, metadata FROM events "
                "WHERE stream_id = :sid ORDER BY version"
            ),
            {"sid": stream_id},
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("mode", ["no_stream", "any", "exact", "exists"])
def test_every_shape_stores_the_same_rows(
    log_engine: Engine, shape: str, mode: str, sent: list[str]
) -> None:
    store = EventStore(registry=registry)
    first = batch(shape, 1)
    with log_engine.begin() as conn:
        store.append(conn, "note-1", first, expected_version=NO_STREAM)
    expected = {"no_stream": None, "any": ANY, "exact": len(first), "exists": STREAM_EXISTS}
    second = batch(shape, 10)
    with log_engine.begin() as conn:
        if mode == "no_stream":
            with pytest.raises(ConcurrencyError):
                store.append(conn, "note-1", second, expected_version=NO_STREAM)
            return
        result = store.append(conn, "note-1", second, expected_version=expected[mode])
    events = [*first, *second]
    assert result.version == len(events)
    assert result.appended == len(second)
    assert [r.event for r in result.recorded] == [e.event for e in second]  # type: ignore[union-attr]
    assert [r.version for r in result.recorded] == list(range(len(first) + 1, len(events) + 1))
    rows = stored(log_engine, "note-1")
    assert [r[0] for r in rows] == list(range(1, len(events) + 1))
    assert {r[1:3] for r in rows} == {("shape.noted", 1)}
    for row, new in zip(rows, events, strict=True):
        assert isinstance(new, NewEvent)
        data = row[3]
        assert data["text"] == new.event.text  # type: ignore[attr-defined]
        assert Decimal(data["amount"]) == new.event.amount  # type: ignore[attr-defined]
        assert data["tags"] == ["a", TRICKY]
        assert row[4] == {"note": TRICKY, "k": new.metadata["k"]}
    with log_engine.connect() as conn:
        assert [r.event for r in store.read_stream(conn, "note-1")] == [e.event for e in events]
    appends = [s for s in sent if "INSERT INTO events" in s]
    marker = {"one": "CAST(%(data)s AS jsonb)", "many": "jsonb_array_elements", "huge": "text[]"}
    assert appends
    assert all(marker[shape] in s for s in appends)


def test_every_shape_refuses_a_stale_version(log_engine: Engine, shape: str) -> None:
    store = EventStore(registry=registry)
    with log_engine.begin() as conn:
        store.append(conn, "note-2", batch(shape, 1))
    with log_engine.begin() as conn, pytest.raises(ConcurrencyError) as caught:
        store.append(conn, "note-2", batch(shape, 5), expected_version=99)
    assert caught.value.actual == len(batch(shape, 1))
    assert len(stored(log_engine, "note-2")) == len(batch(shape, 1))
