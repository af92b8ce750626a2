"""The legacy recipe: the origin document's plain ``events`` table moves into the
partitioned layout through a shadow table and a swap, with no event lost."""

from __future__ import annotations

import io
import json
import re
import uuid
from contextlib import redirect_stdout
from datetime import date

import pytest
from alembic import command
from alembic_support import ROOT, alembic_config, empty_schema, relations
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from cqrs import Event, EventRegistry, EventStore, event
from cqrs.config import Settings
from cqrs.errors import LegacyImportError
from cqrs.migrations import import_legacy_events
from cqrs.store import guards, partitions

registry = EventRegistry()


@event("user.created", registry=registry)
class UserCreated(Event):
    n: int


@event("user.renamed", registry=registry)
class UserRenamed(Event):
    n: int


LEGACY_DDL = """
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    event_id uuid UNIQUE,
    event_type text NOT NULL,
    aggregate_id uuid NOT NULL,
    aggregate_type text NOT NULL,
    event_data jsonb NOT NULL,
    metadata jsonb,
    version integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_events_aggregate ON events (aggregate_type, aggregate_id);
CREATE INDEX idx_events_type ON events (event_type);
CREATE INDEX idx_events_created ON events (created_at);
"""
AGGREGATES = 12
PER_AGGREGATE = 25  # 300 events over three months


def _seed(conn: Connection) -> list[uuid.UUID]:
    for statement in LEGACY_DDL.split(";"):
        if statement.strip():
            conn.execute(text(statement))
    ids = [uuid.UUID(int=i + 1) for i in range(AGGREGATES)]
    for v in range(1, PER_AGGREGATE + 1):  # interleaved, as a live system writes
        for i, agg in enumerate(ids):
            month = 1 + (v - 1) * 3 // PER_AGGREGATE
            conn.execute(
                text(
                    "INSERT INTO events (event_id, event_type, aggregate_id, aggregate_type, "
                    "event_data, metadata, version, created_at) VALUES (:e, :t, :a, 'user', "
                    "CAST(:d AS jsonb), CAST(:m AS jsonb), :v, CAST(:at AS timestamptz))"
                ),
                {
                    "e": uuid.uuid4(),
                    "t": "user.created" if v == 1 else "user.renamed",
                    "a": agg,
                    "d": json.dumps({"n": v}),
                    "m": None if i % 3 else json.dumps({"correlation_id": f"c-{i}"}),
                    "v": v,
                    "at": f"2024-{month:02d}-{1 + v % 27:02d} {i:02d}:00:00+00",
                },
            )
    return ids


def _assert_imported(conn: Connection, ids: list[uuid.UUID]) -> None:
    total = AGGREGATES * PER_AGGREGATE
    assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == total
    lost = conn.execute(
        text(
            "SELECT count(*) FROM (SELECT event_id, id, aggregate_id::text, version, event_data, "
            "created_at FROM events_legacy EXCEPT SELECT event_id, global_position, stream_id, "
            "version, data, recorded_at FROM events) missing"
        )
    ).scalar_one()
    assert lost == 0
    assert partitions.partition_strategy(conn) in ("range", "hash")
    streams = conn.execute(
        text("SELECT stream_id, stream_type, version, created_at FROM streams ORDER BY 1")
    ).all()
    assert [(s, t, v) for s, t, v, _ in streams] == [
        (str(a), "user", PER_AGGREGATE) for a in sorted(ids, key=str)
    ]
    store = EventStore(registry=registry)
    history = store.read_stream(conn, str(ids[0]))
    assert [e.version for e in history] == list(range(1, PER_AGGREGATE + 1))
    assert history[0].event == UserCreated(1)
    assert history[0].metadata.get("correlation_id") == "c-0"
    assert guards.installed(conn)  # append-only from the swap on (stamped at head too)
    # the store carries on where the old table stopped: next version, next position
    top = conn.execute(text("SELECT max(id) FROM events_legacy")).scalar_one()
    partitions.ensure(conn, Settings())  # the runner's upkeep: this month exists
    with Session(bind=conn) as s:
        result = store.append(s, str(ids[0]), [UserRenamed(99)], expected_version=PER_AGGREGATE)
        s.flush()
    assert result.version == PER_AGGREGATE + 1
    assert result.position.global_position > top
    assert result.position > history[-1].position


@pytest.mark.parametrize("layout", ["range", "hash"])
def test_import_in_batches_then_swap(cqrs_database_url: str, layout: str) -> None:
    with empty_schema(cqrs_database_url) as engine:
        with engine.begin() as conn:
            ids = _seed(conn)
        settings = Settings(partitioning=layout, hash_partitions=4, months_ahead=2)
        result = import_legacy_events(
            engine, settings=settings, batch_size=70, today=date(2024, 4, 10)
        )
        assert result.events == AGGREGATES * PER_AGGREGATE and result.streams == AGGREGATES
        with engine.begin() as conn:
            assert partitions.partition_strategy(conn) == layout
            if layout == "range":  # the three seeded months, this one (April) and two ahead
                assert result.partitions == [f"events_y2024m{m:02d}" for m in range(1, 7)]
            else:
                assert len(result.partitions) == 4
            assert relations(conn)["events_legacy"] == "r"
            assert "events_shadow" not in relations(conn)
            _assert_imported(conn, ids)


def test_import_resumes_after_an_interrupted_copy(cqrs_database_url: str) -> None:
    from cqrs.migrations import legacy

    with empty_schema(cqrs_database_url) as engine:
        with engine.begin() as conn:
            ids = _seed(conn)
            legacy._prepare(conn, "events", "events_legacy", Settings(), date(2024, 4, 1))
            legacy._copy(conn, "events", batch_size=100, batches=1)  # then the process died
            # the service keeps writing to the old table meanwhile
            conn.execute(
                text(
                    "INSERT INTO events (event_id, event_type, aggregate_id, aggregate_type, "
                    "event_data, version, created_at) VALUES (gen_random_uuid(), 'user.renamed', "
                    ":a, 'user', '{\"n\": 26}', 26, '2024-03-30')"
                ),
                {"a": ids[0]},
            )
        result = import_legacy_events(engine, batch_size=1000, today=date(2024, 4, 1))
        assert result.events == AGGREGATES * PER_AGGREGATE + 1
        with engine.connect() as conn:
            version = conn.execute(
                text("SELECT version FROM streams WHERE stream_id = :s"), {"s": str(ids[0])}
            )
            assert version.scalar_one() == PER_AGGREGATE + 1


def test_duplicate_versions_are_refused_and_nothing_changes(cqrs_database_url: str) -> None:
    with empty_schema(cqrs_database_url) as engine:
        with engine.begin() as conn:
            ids = _seed(conn)
            conn.execute(  # what the MAX(version)+1 publisher produced under a race
                text(
                    "INSERT INTO events (event_id, event_type, aggregate_id, aggregate_type, "
                    "event_data, version) VALUES (gen_random_uuid(), 'user.renamed', :a, 'user', "
                    "'{}', 7)"
                ),
                {"a": ids[3]},
            )
        with pytest.raises(LegacyImportError, match=f"'{ids[3]}', 7"):
            import_legacy_events(engine)
        with engine.connect() as conn:
            assert set(relations(conn)) == {"events"}
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 301


def test_missing_table_and_missing_columns_are_named(cqrs_database_url: str) -> None:
    with empty_schema(cqrs_database_url) as engine, engine.begin() as conn:
        with pytest.raises(LegacyImportError, match="no table 'events'"):
            import_legacy_events(conn)
        conn.execute(text("CREATE TABLE old_events (id bigserial, payload jsonb)"))
        with pytest.raises(LegacyImportError, match="lacks the columns"):
            import_legacy_events(conn, source="old_events")


def test_alembic_upgrade_imports_a_legacy_table(cqrs_database_url: str) -> None:
    """``alembic upgrade heads`` on a database in the origin layout: the cqrs branch's
    first revision imports the old table, then ``alembic check`` is clean."""
    engine: Engine
    with empty_schema(cqrs_database_url) as engine, engine.connect() as conn:
        with conn.begin():
            ids = _seed(conn)
        config = alembic_config(conn)
        command.upgrade(config, "heads")
        command.check(config)
        conn.commit()
        with conn.begin():
            _assert_imported(conn, ids)
        assert partitions.partition_strategy(conn) == "range"
        names = [p.name for p in partitions.list_partitions(conn)]
        assert names[:3] == ["events_y2024m01", "events_y2024m02", "events_y2024m03"]
        conn.rollback()


def test_import_as_an_alembic_operation(cqrs_database_url: str) -> None:
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    with empty_schema(cqrs_database_url) as engine, engine.begin() as conn:
        ids = _seed(conn)
        ops = Operations(MigrationContext.configure(conn))
        ops.import_legacy_events(  # type: ignore[attr-defined]
            "events", partitioning="hash", hash_partitions=2
        )
        assert partitions.partition_strategy(conn) == "hash"
        _assert_imported(conn, ids)


def test_the_guide_recipe_runs_and_alembic_takes_over(cqrs_database_url: str) -> None:
    guide = ROOT / "docs" / "guides" / "migrating-legacy-events.md"
    blocks = re.findall(r"```python\n(.*?)```", guide.read_text(), flags=re.DOTALL)
    with empty_schema(cqrs_database_url) as engine:
        with engine.begin() as conn:
            ids = _seed(conn)
        out = io.StringIO()
        with redirect_stdout(out):
            exec(blocks[0], {"engine": engine})
        assert out.getvalue().split()[:2] == [str(AGGREGATES * PER_AGGREGATE), str(AGGREGATES)]
        with engine.connect() as conn:
            config = alembic_config(conn)
            command.stamp(config, "cqrs@head")
            command.check(config)
            conn.commit()
            with conn.begin():
                _assert_imported(conn, ids)
