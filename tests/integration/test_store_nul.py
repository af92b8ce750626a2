"""jsonb cannot hold U+0000: the store refuses it with a typed error and writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import NO_STREAM, Event, EventRegistry, EventStore, event
from cqrs.errors import SerializationError

registry = EventRegistry()


@event("nul.note", registry=registry)
class Note(Event):
    text: str


def test_nul_in_payload_or_metadata_is_refused_before_writing(cqrs_engine: Engine) -> None:
    store = EventStore(registry=registry)
    with Session(cqrs_engine) as s, s.begin():
        store.append(s, "note-1", [Note("first")], expected_version=NO_STREAM)
    with Session(cqrs_engine) as s, s.begin():
        with pytest.raises(SerializationError, match="NUL"):
            store.append(s, "note-1", [Note("ok"), Note("bad\x00"), Note("ok")], expected_version=1)
        with pytest.raises(SerializationError, match="NUL"):
            store.append(s, "note-1", [Note("ok")], expected_version=1, metadata={"who": "x\x00"})
        # the transaction is still usable: nothing reached the database
        store.append(s, "note-1", [Note("a \\u0000 escape is only text")], expected_version=1)
    with cqrs_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 2
        texts = [e.event.text for e in store.read_stream(conn, "note-1")]  # type: ignore[attr-defined]
    assert texts == ["first", "a \\u0000 escape is only text"]
