"""Internal: the append's array literals (cqrs.store.arrays) read back exactly on PostgreSQL."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from cqrs import NO_STREAM, Event, EventRegistry, EventStore, StreamAppend
from cqrs import event as event_type
from cqrs.store import arrays

# text PostgreSQL can hold: no NUL, no lone surrogates
pg_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
HOSTILE = ['"', "\\", '\\"', "{", "}", ",", "{a,b}", "NULL", "null", "", " ", " x ", "\t\n",
           'a"b', "a\\b", "\\\\", "Zoë", "日本", "🙂", "'", "''", "$1", "%s", "%(x)s"]  # fmt: skip


def _read(engine: Engine, literal: str, kind: str) -> list[object]:
    statement = {
        "text": "SELECT CAST(CAST(:v AS text) AS text[])",
        "int": "SELECT CAST(CAST(:v AS text) AS int[])",
        "uuid": "SELECT CAST(CAST(:v AS text) AS uuid[])",
    }[kind]
    with engine.connect() as conn:
        return list(conn.execute(text(statement), {"v": literal}).scalar_one())


def test_hostile_strings_and_nulls_come_back_as_written(cqrs_engine: Engine) -> None:
    values: list[str | None] = [*HOSTILE, None, "NULL", None]
    assert _read(cqrs_engine, arrays.texts(values), "text") == values
    assert _read(cqrs_engine, arrays.texts(HOSTILE), "text") == HOSTILE
    assert _read(cqrs_engine, arrays.texts([]), "text") == []
    assert _read(cqrs_engine, arrays.texts(["plain", "a-1"]), "text") == ["plain", "a-1"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.none() | pg_text | st.sampled_from(HOSTILE), max_size=12))
def test_any_text_list_round_trips(cqrs_engine: Engine, values: list[str | None]) -> None:
    assert _read(cqrs_engine, arrays.texts(values), "text") == values


def test_ints_and_uuids_round_trip(cqrs_engine: Engine) -> None:
    numbers = [0, 1, -1, 2147483647, -2147483648, None, 7]
    assert _read(cqrs_engine, arrays.ints(numbers), "int") == numbers
    ids = [uuid.uuid4() for _ in range(20)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    assert _read(cqrs_engine, arrays.uuids(ids), "uuid") == ids


registry = EventRegistry()


@event_type("arrays.named", registry=registry)
class Named(Event):
    label: str


def test_streams_with_hostile_ids_append_and_read_back(cqrs_engine: Engine) -> None:
    store = EventStore(registry=registry)
    sids = [f"s-{h}" for h in ('q"uote', "back\\slash", "{brace}", "com,ma", "NULL", "Zoë")]
    with cqrs_engine.begin() as conn:
        store.append_many(
            conn,
            [
                StreamAppend(sid, [Named(sid), Named("x")], expected_version=NO_STREAM)
                for sid in sids
            ],
        )
        store.append(conn, sids[0], [Named(h) for h in HOSTILE], expected_version=2)
    with cqrs_engine.connect() as conn:
        for sid in sids:
            events = store.read_stream(conn, sid)
            assert events[0].stream_id == sid and events[0].event.label == sid
        labels = [e.event.label for e in store.read_stream(conn, sids[0])[2:]]
        assert labels == HOSTILE
