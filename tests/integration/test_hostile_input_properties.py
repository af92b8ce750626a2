"""Internal: generated hostile strings and structures thrown at the public entry points.

``append``, ``read_stream``, ``read_all``, ``Repository.create`` and command
dispatch may only succeed or raise a ``cqrs.errors.CqrsError``: never a
``UnicodeEncodeError``, ``RecursionError``, ``TypeError`` or a driver error. Every
example runs in a transaction that first writes a row of the caller's own table;
after the call (and catching its ``CqrsError``) the transaction commits, and that
row must be there: nothing was sent that could abort the transaction. A sentinel
stream written before the run stays exactly as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import Aggregate, CommandBus, EventStore, Position, Repository, UnitOfWork, applies
from cqrs.errors import CqrsError
from cqrs.store.validation import name_problem
from cqrs.testing import isolated_schema
from cqrs.testing.conformance import Noted, registry

FRAGMENTS = [
    "a", "-", "1", " ", "\t", "\n", "\x00", "\x1b", "\x7f", "\u0085", "\u00a0", "\u200b",
    "\u200d", "\u2060", "\ufeff", "\u3000", "\u3164", "\ud800", "\udfff", "\U0001f600",
    "\u0301", "x" * 199, "y" * 1000,
]  # fmt: skip

hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),  # surrogates included
    st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join),
    st.integers(1, 5).map(lambda n: "z" * (10**n)),  # up to 100,000 characters
)
hostile_id = st.one_of(hostile_text, st.none(), st.integers(), st.binary(max_size=5))


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


DEEP = "<500 levels>"
"""Stands for a 500-deep payload in explicit examples (Hypothesis prints those with
a recursive pretty-printer)."""

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), hostile_text
)
structures = st.one_of(
    st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.one_of(hostile_text, st.integers()), inner, max_size=3)
        ),
        max_leaves=10,
    ),
    st.tuples(st.integers(0, 600), scalars).map(lambda t: _nested(*t)),
)
metadata = st.one_of(
    st.none(),
    st.dictionaries(hostile_text, structures, max_size=3),
    st.dictionaries(st.integers(), st.text(max_size=3), max_size=2),
    st.lists(st.text(max_size=3), max_size=2),
    hostile_text,
)
limits = st.one_of(
    st.integers(-(2**40), 2**40), st.sampled_from([0, 1, 10_000, 10_001]), st.booleans()
)


class Box(Aggregate):
    aggregate_type = "box"

    @applies(Noted)
    def _noted(self, e: Noted) -> None:
        pass


@attrs.frozen
class PutInBox:
    box_id: Any
    note: Any
    result: Any


store = EventStore(registry=registry)
bus = CommandBus(store=store)


@bus.handles(PutInBox)
def put_in_box(cmd: PutInBox, uow: UnitOfWork) -> Any:
    box = uow.repository(Box).get_or_none(cmd.box_id) or uow.repository(Box).create(cmd.box_id)
    box.record(Noted(cmd.note))
    return cmd.result


@pytest.fixture(scope="module")
def engine(cqrs_database_url: str) -> Iterator[Engine]:
    with isolated_schema(cqrs_database_url) as engine:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE audit (marker text PRIMARY KEY)"))
        with Session(engine) as session, session.begin():
            store.append(session, "sentinel-1", [Noted("keep"), Noted({"me": [1, 2]})])
        yield engine


def _sentinel(engine: Engine) -> list[Any]:
    with Session(engine) as session:
        return [(e.event_id, e.event) for e in store.read_stream(session, "sentinel-1")]


def _run(engine: Engine, call: Any) -> bool:
    """``call(session)`` after writing a marker row; only success or a CqrsError; the
    marker commits either way. Answers whether the call succeeded."""
    marker = str(uuid.uuid4())
    succeeded = False
    with Session(engine) as session, session.begin():
        session.execute(text("INSERT INTO audit VALUES (:m)"), {"m": marker})
        try:
            call(session)
            succeeded = True
        except CqrsError:
            pass
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM audit WHERE marker = :m"), {"m": marker})
        assert found.scalar() == 1, "the caller's own row was lost: something reached the server"
    return succeeded


def _usable(name: Any) -> bool:
    return name_problem(name, 200) is None


PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)  # fmt: skip


@PROPERTY
@given(stream_id=hostile_id, payload=structures, meta=metadata, stream_type=hostile_id)
@example(stream_id="s-\ud800", payload=1, meta=None, stream_type=None)
@example(stream_id="s-1", payload=DEEP, meta=None, stream_type=None)
@example(stream_id="s-1", payload=1, meta={"k": "\udfff"}, stream_type="a\x00")
def test_append(engine: Engine, stream_id: Any, payload: Any, meta: Any, stream_type: Any) -> None:
    payload = _nested(500, 1) if payload == DEEP else payload
    before = _sentinel(engine)
    _run(
        engine,
        lambda s: store.append(
            s, stream_id, [Noted(payload)], metadata=meta, stream_type=stream_type
        ),
    )
    if _run(engine, lambda s: store.append(s, stream_id, [Noted("plain")])):
        assert _usable(stream_id)
    assert _sentinel(engine) == before


@PROPERTY
@given(stream_id=hostile_id, lo=limits, hi=st.one_of(st.none(), limits))
@example(stream_id="a\x00", lo=1, hi=None)
def test_read_stream(engine: Engine, stream_id: Any, lo: Any, hi: Any) -> None:
    _run(engine, lambda s: store.read_stream(s, stream_id, from_version=lo, to_version=hi))
    _run(engine, lambda s: store.stream_info(s, stream_id))


@PROPERTY
@given(
    limit=limits,
    types=st.one_of(st.none(), hostile_text, st.lists(hostile_id, max_size=3)),
    after=st.one_of(
        st.builds(Position, st.integers(0, 2**40), st.integers(0, 2**40)), hostile_text
    ),
)
@example(limit=-1, types=None, after=Position(0, 0))
def test_read_all(engine: Engine, limit: Any, types: Any, after: Any) -> None:
    _run(engine, lambda s: store.read_all(s, after=after, limit=limit, types=types))


@PROPERTY
@given(id=hostile_id, payload=structures)
@example(id=None, payload=1)
@example(id="\u200b\u200b", payload=1)
def test_repository_create(engine: Engine, id: Any, payload: Any) -> None:
    before = _sentinel(engine)

    def create(session: Session) -> None:
        repo = Repository(Box, session, store=store)
        box = repo.create(id)
        box.record(Noted(payload))
        repo.save(box)

    if _run(engine, create):
        assert _usable(id), "an unusable id made a stream"
    assert _sentinel(engine) == before


@PROPERTY
@given(
    box_id=hostile_id,
    note=structures,
    result=structures,
    command_id=st.one_of(st.none(), hostile_id),
)
@example(box_id="b-1", note=1, result=None, command_id="c\x00")
@example(box_id="b-2", note=1, result=None, command_id="x" * 100_000)
def test_command_dispatch(
    engine: Engine, box_id: Any, note: Any, result: Any, command_id: Any
) -> None:
    before = _sentinel(engine)
    command = PutInBox(box_id, note, result)
    if _run(engine, lambda s: bus.dispatch(command, s, command_id=command_id)):
        assert command_id is None or _usable(command_id)
    assert _sentinel(engine) == before
