"""Partition upkeep and retirement of ``events``: ensure ahead, month boundaries,
detach without touching live streams, archive to a schema or a file, the CLI."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cqrs import Event, EventRegistry, EventStore, event
from cqrs.config import Settings
from cqrs.errors import InvalidInput, PartitionInUse
from cqrs.store import partitions

registry = EventRegistry()


@event("partition_test.noted", registry=registry)
class Noted(Event):
    n: int


def _store() -> EventStore:
    return EventStore(registry=registry)


def _insert(conn: Connection, stream_id: str, version: int, at: str) -> None:
    """An event row with an explicit ``recorded_at`` (the store stamps the clock time)."""
    conn.execute(
        text(
            "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, "
            "recorded_at) VALUES (:e, :s, 'note', :v, 'partition_test.noted', "
            "CAST(:d AS jsonb), CAST(:at AS timestamptz))"
        ),
        {
            "e": uuid.uuid4(),
            "s": stream_id,
            "v": version,
            "d": json.dumps({"n": version}),
            "at": at,
        },
    )


def _partition_of(conn: Connection, stream_id: str, version: int) -> str:
    return str(
        conn.execute(
            text(
                "SELECT tableoid::regclass::text FROM events WHERE stream_id = :s AND version = :v"
            ),
            {"s": stream_id, "v": version},
        ).scalar_one()
    )


def _schema(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT current_schema()")).scalar_one())


@pytest.fixture
def archive_schema(cqrs_engine: Engine) -> Iterator[str]:
    name = f"arch_{uuid.uuid4().hex[:10]}"
    yield name
    with cqrs_engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def _seed_old_and_live(engine: Engine) -> None:
    """``old-1`` (archived) lives in January 2025; ``live-1`` is appended now."""
    with engine.begin() as conn:
        partitions.ensure_months(conn, date(2025, 1, 1), 1)
        conn.execute(
            text(
                "INSERT INTO streams (stream_id, stream_type, version, created_at, archived) "
                "VALUES ('old-1', 'note', 3, '2025-01-05', true)"
            )
        )
        for v in (1, 2, 3):
            _insert(conn, "old-1", v, f"2025-01-0{v + 4} 10:00:00+00")
    with Session(engine) as s, s.begin():
        _store().append(s, "live-1", [Noted(1), Noted(2)], stream_type="note")


def test_ensure_keeps_n_months_ahead(cqrs_engine: Engine) -> None:
    with cqrs_engine.begin() as conn:
        made = partitions.ensure(conn, Settings(months_ahead=5), today=date(2030, 11, 17))
        assert made == [f"events_y{y}m{m:02d}" for y, m in [(2030, 11), (2030, 12)]] + [
            f"events_y2031m{m:02d}" for m in range(1, 5)
        ]
        names = {p.name for p in partitions.list_partitions(conn)}
        assert set(made) <= names
        assert partitions.ensure(conn, Settings(months_ahead=5), today=date(2030, 11, 30)) == []
        bounds = {p.name: p.bounds for p in partitions.list_partitions(conn)}
        assert bounds["events_y2031m04"] == (
            "FOR VALUES FROM ('2031-04-01 00:00:00+00') TO ('2031-05-01 00:00:00+00')"
        )


def test_events_after_a_month_boundary_land_in_the_next_partition(cqrs_engine: Engine) -> None:
    with cqrs_engine.begin() as conn:
        partitions.ensure(conn, Settings(months_ahead=1), today=date(2029, 1, 31))
        conn.execute(text("INSERT INTO streams VALUES ('b-1', 'note', 4)"))
        _insert(conn, "b-1", 1, "2029-01-31 23:59:59.999999+00")
        _insert(conn, "b-1", 2, "2029-02-01 00:00:00+00")
        _insert(conn, "b-1", 3, "2029-02-01 00:30:00+01")  # 23:30 UTC on 31 January
        _insert(conn, "b-1", 4, "2029-01-31 20:00:00-05")  # 01:00 UTC on 1 February
        assert _partition_of(conn, "b-1", 1) == "events_y2029m01"
        assert _partition_of(conn, "b-1", 2) == "events_y2029m02"
        assert _partition_of(conn, "b-1", 3) == "events_y2029m01"
        assert _partition_of(conn, "b-1", 4) == "events_y2029m02"
    with Session(cqrs_engine) as s, s.begin():
        result = _store().append(s, "now-1", [Noted(1)])
        this_month = result.recorded[0].recorded_at.astimezone(UTC)
        expected = partitions.month_partition_name(this_month.date())
        assert _partition_of(s.connection(), "now-1", 1) == expected


def test_detaching_an_old_partition_leaves_live_streams_readable(cqrs_engine: Engine) -> None:
    _seed_old_and_live(cqrs_engine)
    with cqrs_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        partitions.detach(conn, "events_y2025m01", concurrently=True)
    with cqrs_engine.connect() as conn:
        stats = {p.name: p for p in partitions.partition_stats(conn, exact=True)}
        assert not stats["events_y2025m01"].attached and stats["events_y2025m01"].rows == 3
        assert stats["events_y2025m01"].bounds is None
        live = _store().read_stream(conn, "live-1")
        assert [e.event for e in live] == [Noted(1), Noted(2)]
        assert _store().read_stream(conn, "old-1") == []  # its events left with the partition
    with Session(cqrs_engine) as s, s.begin():
        assert _store().append(s, "live-1", [Noted(3)], expected_version=2).version == 3


def test_detach_refuses_while_live_streams_have_events_there(cqrs_engine: Engine) -> None:
    _seed_old_and_live(cqrs_engine)
    with cqrs_engine.begin() as conn:
        conn.execute(text("UPDATE streams SET archived = false WHERE stream_id = 'old-1'"))
    with cqrs_engine.begin() as conn:
        with pytest.raises(PartitionInUse, match="old-1") as info:
            partitions.detach(conn, "events_y2025m01")
        assert info.value.stream_ids == ["old-1"]
        assert "events_y2025m01" in {p.name for p in partitions.list_partitions(conn)}
        with pytest.raises(InvalidInput, match="inside a transaction"):
            partitions.detach(conn, "events_y2025m01", concurrently=True, force=True)
        partitions.detach(conn, "events_y2025m01", force=True)
        assert "events_y2025m01" not in {p.name for p in partitions.list_partitions(conn)}


def test_detach_and_archive_reject_names_that_are_not_partitions(cqrs_engine: Engine) -> None:
    with cqrs_engine.begin() as conn:
        with pytest.raises(InvalidInput, match="not a partition name"):
            partitions.detach(conn, "streams")
        with pytest.raises(InvalidInput, match="no table"):
            partitions.archive(conn, "events_y1999m01")
        current = partitions.list_partitions(conn)[0].name
        partitions.detach(conn, current)
        with pytest.raises(InvalidInput, match="already detached"):
            partitions.detach(conn, current)


def test_archive_to_a_schema(cqrs_engine: Engine, archive_schema: str) -> None:
    _seed_old_and_live(cqrs_engine)
    with cqrs_engine.begin() as conn:
        result = partitions.archive(conn, "events_y2025m01", schema=archive_schema)
        assert (result.rows, result.destination) == (3, f"{archive_schema}.events_y2025m01")
        moved = conn.execute(text(f'SELECT count(*) FROM "{archive_schema}".events_y2025m01'))
        assert moved.scalar_one() == 3
        assert "events_y2025m01" not in {p.name for p in partitions.partition_stats(conn)}
        assert [e.version for e in _store().read_stream(conn, "live-1")] == [1, 2]


def test_hash_partitions_are_always_in_use(cqrs_database_url: str) -> None:
    from cqrs.testing.database import isolated_schema

    with isolated_schema(cqrs_database_url, Settings(partitioning="hash", hash_partitions=2)) as e:
        with Session(e) as s, s.begin():
            for i in range(6):
                _store().append(s, f"h-{i}", [Noted(i)])
        with e.begin() as conn:
            for name in ("events_h000_of_002", "events_h001_of_002"):
                for force in (False, True):  # never, not even forced
                    with pytest.raises(InvalidInput, match="is a hash partition"):
                        partitions.detach(conn, name, force=force)
                    with pytest.raises(InvalidInput, match="is a hash partition"):
                        partitions.archive(conn, name, force=force)
            assert all(p.attached for p in partitions.partition_stats(conn))
            # upkeep with other settings keeps the modulus the table was made with
            assert partitions.ensure(conn, Settings(partitioning="hash", hash_partitions=8)) == []
            conn.execute(text("DROP TABLE events_h001_of_002"))
            assert partitions.ensure(conn, Settings(hash_partitions=8)) == ["events_h001_of_002"]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_archive_to_a_file(cqrs_engine: Engine, tmp_path: Path, suffix: str) -> None:
    _seed_old_and_live(cqrs_engine)
    target = tmp_path / f"events_y2025m01{suffix}"
    with cqrs_engine.begin() as conn:
        result = partitions.archive(conn, "events_y2025m01", to_file=target)
    assert result.rows == 3 and result.destination == str(target)
    raw = gzip.decompress(target.read_bytes()) if suffix.endswith(".gz") else target.read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [(r["stream_id"], r["version"]) for r in rows] == [("old-1", str(v)) for v in (1, 2, 3)]
    assert json.loads(rows[0]["data"]) == {"n": 1}
    assert not list(tmp_path.glob("*.partial"))
    with cqrs_engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('events_y2025m01')")).scalar() is None


def test_archive_never_overwrites_a_file_and_keeps_the_table(
    cqrs_engine: Engine, tmp_path: Path
) -> None:
    _seed_old_and_live(cqrs_engine)
    target = tmp_path / "old.csv"
    target.write_text("precious")
    with cqrs_engine.begin() as conn, pytest.raises(InvalidInput, match="already exists"):
        partitions.archive(conn, "events_y2025m01", to_file=target)
    assert target.read_text() == "precious"
    with cqrs_engine.connect() as conn:
        assert "events_y2025m01" in {p.name for p in partitions.list_partitions(conn)}


def _cli(url: str, schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``cqrs`` command as an operator would, scoped to ``schema``."""
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    argv = [sys.executable, "-m", "cqrs.cli.main", *args, "--json"]
    argv += ["--database-url", scoped.render_as_string(False)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _cli_json(url: str, schema: str, *args: str) -> Any:
    done = _cli(url, schema, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_list_ensure_detach_archive(
    cqrs_engine: Engine, cqrs_database_url: str, archive_schema: str
) -> None:
    _seed_old_and_live(cqrs_engine)
    schema = _schema(cqrs_engine)
    listed = _cli_json(cqrs_database_url, schema, "partitions", "list", "--exact")
    by_name = {p["name"]: p for p in listed}
    assert by_name["events_y2025m01"]["rows"] == 3 and by_name["events_y2025m01"]["attached"]

    created = _cli_json(cqrs_database_url, schema, "partitions", "ensure", "--months-ahead", "6")
    assert len(created["created"]) == 3  # this month and 3 ahead existed; 6 ahead wanted

    detached = _cli_json(cqrs_database_url, schema, "partitions", "detach", "events_y2025m01")
    assert detached == {"detached": "events_y2025m01"}
    archived = _cli_json(
        cqrs_database_url, schema, "partitions", "archive", "events_y2025m01",
        "--schema", archive_schema,
    )  # fmt: skip
    assert archived["rows"] == 3 and archived["destination"] == f"{archive_schema}.events_y2025m01"


def test_cli_reports_a_refusal_and_changes_nothing(
    cqrs_engine: Engine, cqrs_database_url: str
) -> None:
    _seed_old_and_live(cqrs_engine)
    with cqrs_engine.begin() as conn:
        conn.execute(text("UPDATE streams SET archived = false"))
    done = _cli(cqrs_database_url, _schema(cqrs_engine), "partitions", "detach", "events_y2025m01")
    assert done.returncode == 1  # a runtime refusal (docs/guides/operations.md, exit codes)
    assert "cqrs-partition-in-use" in done.stderr and "old-1" in done.stderr
    with cqrs_engine.connect() as conn:
        assert "events_y2025m01" in {p.name for p in partitions.list_partitions(conn)}
