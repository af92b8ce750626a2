"""Names reach SQL only quoted (``cqrs.sqlnames``): a read model, a channel or a
partitioned table may be named anything, and a hostile name is refused or quoted,
never run as SQL."""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select, text
from sqlalchemy.orm import Session

from cqrs.errors import InvalidInput
from cqrs.events import Event, EventRegistry, RecordedEvent, event
from cqrs.projections import writes
from cqrs.projections.declarative import Projection, ProjectionContext
from cqrs.projections.expr import E
from cqrs.projections.notify import Listener
from cqrs.projections.rebuild import rebuild
from cqrs.projections.runner import ProjectionRunner
from cqrs.projections.writes import STATEMENT_CACHE_SIZE, BatchWriter, Write
from cqrs.store import partitions
from cqrs.store.event_store import EventStore
from cqrs.testing import isolated_schema

REG = EventRegistry()
HOSTILE = 'events"; DROP TABLE streams; --'


@event("names.opened", registry=REG)
class Opened(Event):
    key: str
    label: str


@event("names.bumped", registry=REG)
class Bumped(Event):
    key: str


@event("names.closed", registry=REG)
class Closed(Event):
    key: str


# A table and columns named with "%s" and a double quote: both must reach the
# server exactly as written (a doubled "%" named another table: every event parked).
odd = Table(
    "rm%sx",
    MetaData(),
    Column("k%s", String, primary_key=True),
    Column('say "hi"', String, nullable=False),
    Column("n%%", Integer, nullable=False, default=0),
)


def _projection(name: str) -> Projection:
    p = Projection(name, odd, registry=REG)
    p.on(Opened).upsert(**{"k%s": E.key, 'say "hi"': E.label})
    p.on(Bumped).update(key=E.key, **{"n%%": odd.c["n%%"] + 1})

    @p.on(Closed)
    def _closed(e: RecordedEvent[Closed], ctx: ProjectionContext) -> None:
        ctx.delete(odd, e.event.key)

    return p


HISTORY: list[tuple[str, list[Event]]] = [
    ("a", [Opened("a", "one"), Bumped("a"), Bumped("a")]),
    ("b", [Opened("b", "two%s"), Closed("b")]),
    ("c", [Opened("c", "three"), Opened("c", "drei"), Bumped("c")]),
]
EXPECTED = [("a", "one", 2), ("c", "drei", 1)]


@pytest.fixture
def engine(cqrs_engine: Engine) -> Engine:
    odd.metadata.create_all(cqrs_engine)
    return cqrs_engine


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(odd).order_by(odd.c["k%s"]))]


def _parked(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM dead_letters")).scalar_one())


def test_a_read_model_named_with_percent_projects_inline(engine: Engine) -> None:
    projection, store = _projection("odd_inline"), EventStore(registry=REG)
    for stream_id, events in HISTORY:
        with Session(engine) as session, session.begin():
            result = store.append(session, stream_id, events)
            projection.apply_inline(session, result.recorded)
    assert _rows(engine) == EXPECTED


def test_a_read_model_named_with_percent_projects_through_the_runner(engine: Engine) -> None:
    store = EventStore(registry=REG)
    for stream_id, events in HISTORY:
        with Session(engine) as session, session.begin():
            store.append(session, stream_id, events)
    runner = ProjectionRunner(engine, [_projection("odd_async")], store=store, listen=False)
    assert runner.run_until_caught_up(timeout=30) == 8
    assert _parked(engine) == 0
    assert _rows(engine) == EXPECTED
    result = rebuild(engine, _projection("odd_async"), store=store)  # shadow, swap, drop
    assert result.tables == ("rm%sx",)
    assert _rows(engine) == EXPECTED


def test_a_listen_channel_named_with_percent_hears_its_notifications(engine: Engine) -> None:
    channel = "wake%sup"
    listener = Listener(engine, channel)
    try:
        got: list[bool] = []
        waiting = threading.Thread(target=lambda: got.append(listener.wait(10)))
        waiting.start()
        while waiting.is_alive() and not got:
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_notify(:c, '')"), {"c": channel})
            waiting.join(0.05)
        waiting.join()
        assert got == [True]
    finally:
        listener.close()


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace")
        )
        return set(rows.scalars())


def test_ensure_months_refuses_a_hostile_parent_and_drops_nothing(engine: Engine) -> None:
    before = _tables(engine)
    for call in (
        lambda conn: partitions.ensure_months(conn, date(2001, 1, 1), 1, parent=HOSTILE),
        lambda conn: partitions.ensure_hash(conn, 2, parent=HOSTILE),
    ):
        with engine.begin() as conn, pytest.raises(InvalidInput, match=r"not a .*partitioned"):
            call(conn)
    assert _tables(engine) == before
    assert "streams" in before


def test_ensure_months_quotes_an_odd_parent_name(engine: Engine) -> None:
    parent = 'ev"il%s; --'
    with engine.begin() as conn:
        conn.execute(
            text(
                'CREATE TABLE "ev""il%s; --" (LIKE events INCLUDING DEFAULTS) '
                "PARTITION BY RANGE (recorded_at)"
            )
        )
        made = partitions.ensure_months(conn, date(2001, 1, 1), 2, parent=parent)
        assert made == ["events_y2001m01", "events_y2001m02"]
        found = partitions.list_partitions(conn, parent)
    assert [p.name for p in found] == made
    assert "2001-01-01 00:00:00+00" in found[0].bounds
    assert "streams" in _tables(engine)


def test_isolated_schema_refuses_a_hostile_prefix(cqrs_database_url: str, engine: Engine) -> None:
    for prefix in ('t"; DROP TABLE streams; --', "T", "with space", "x" * 41, ""):
        with (
            pytest.raises(InvalidInput, match="prefix"),
            isolated_schema(cqrs_database_url, prefix=prefix),
        ):
            pass  # pragma: no cover
    assert "streams" in _tables(engine)


def test_the_statement_cache_stays_bounded(engine: Engine) -> None:
    # A rebuild makes new Table objects every time; each got a statement kept forever.
    with engine.begin() as conn:
        for i in range(STATEMENT_CACHE_SIZE + 50):
            copy = odd.to_metadata(MetaData())
            writer = BatchWriter(conn)
            writer.add(Write("upsert", copy, ("k",), {"k%s": "k", 'say "hi"': str(i)}))
            writer.add(Write("delete", copy, (f"gone-{i}",), {}))
            writer.flush()
            assert writer.statements == 2
    assert writes.cache_size() <= 2 * STATEMENT_CACHE_SIZE
    assert _rows(engine) == [("k", str(STATEMENT_CACHE_SIZE + 49), 0)]
