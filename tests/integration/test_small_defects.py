"""Smaller defects, each pinned against PostgreSQL: upkeep on a freshly booted host,
projection names with '#', rebuilding a table whose name is 63 bytes long, notify
channels PostgreSQL cannot carry and hints that fail, and streams whose stored
versions repeat or skip (they used to ask for a retry that could never succeed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from commands_domain import PlaceOrder, ShipOrder, make_bus
from sqlalchemy import Engine, Integer, String, create_engine, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cqrs import Event, EventRegistry, EventStore, Settings
from cqrs import event as declare
from cqrs.commands import CommandMetrics, MetricsHook, RetryOnConflict
from cqrs.errors import ConcurrencyError, ConfigurationError, StreamVersionsInconsistent
from cqrs.projections import E, Projection
from cqrs.projections import runner as runner_module
from cqrs.projections.notify import Listener, Notifier
from cqrs.projections.rebuild import rebuild
from cqrs.projections.runner import ProjectionRunner
from cqrs.projections.status import projection_status
from cqrs.store import partitions

REG = EventRegistry()
store = EventStore(registry=REG)


@declare("defects.counted", registry=REG)
class Counted(Event):
    key: str
    n: int


class Base(DeclarativeBase):
    pass


LONG_NAME = "read_model_with_a_name_exactly_as_long_as_postgres_allows_63_by"
assert len(LONG_NAME) == 63


class LongNamed(Base):
    __tablename__ = LONG_NAME

    key: Mapped[str] = mapped_column(String, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


def _wait_until(done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _append(engine: Engine, stream_id: str, *events: Event) -> None:
    with Session(engine) as s, s.begin():
        store.append(s, stream_id, list(events))


# -- runner upkeep ------------------------------------------------------------------------


def test_upkeep_runs_at_start_on_a_freshly_booted_host(
    cqrs_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cqrs_engine.begin() as conn:
        newest = max(p.name for p in partitions.list_partitions(conn))
        conn.execute(text(f'ALTER TABLE events DETACH PARTITION "{newest}"'))
        conn.execute(text(f'DROP TABLE "{newest}"'))
    # time.monotonic() counts from boot on Linux: 5 s after boot, far less than upkeep_every
    monkeypatch.setattr(runner_module.time, "monotonic", lambda: 5.0)
    runner = ProjectionRunner(cqrs_engine, [], listen=False, settings=Settings(months_ahead=3))
    try:
        assert runner.upkeep() == [newest]
        assert runner.upkeep() == []  # then every upkeep_every seconds
    finally:
        runner.close()


# -- projection names with '#' ---------------------------------------------------------


def test_projection_names_with_a_hash_show_in_status(cqrs_engine: Engine) -> None:
    with cqrs_engine.begin() as conn:
        for name in ("orders#eu", "orders#us", "#first", "orders#rebuild"):
            conn.execute(text("INSERT INTO checkpoints (projection, shard) VALUES (:p, 0)"),
                         {"p": name})  # fmt: skip
    shown = [s.projection for s in projection_status(cqrs_engine)]
    assert shown == ["#first", "orders#eu", "orders#us"]  # a rebuild in progress stays out


# -- rebuild of a 63-byte table name --------------------------------------------------------


def test_rebuild_of_a_table_with_a_63_byte_name(cqrs_engine: Engine) -> None:
    Base.metadata.create_all(cqrs_engine)
    counts = Projection("defects_long", LongNamed, registry=REG)
    counts.on(Counted).upsert(key=E.key, n=E.n)
    for i in range(5):
        _append(cqrs_engine, f"k-{i}", Counted(f"k-{i}", i))
    runner = ProjectionRunner(cqrs_engine, [counts], store=store, listen=False)
    runner.run_until_caught_up()
    runner.close()
    with cqrs_engine.begin() as conn:  # the live table drifts; the rebuild must repair it
        conn.execute(text(f'UPDATE "{LONG_NAME}" SET n = -1'))

    result = rebuild(cqrs_engine, counts, store=store)

    assert result.tables == (LONG_NAME,)
    with cqrs_engine.connect() as conn:
        rows = conn.execute(text(f'SELECT key, n FROM "{LONG_NAME}" ORDER BY key')).all()
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                 "AND tablename LIKE 'read_model%' ORDER BY 1")
        ).scalars().all()  # fmt: skip
    assert [tuple(r) for r in rows] == [(f"k-{i}", i) for i in range(5)]
    assert tables == [LONG_NAME]  # no shadow or old table left behind


# -- notify channels ------------------------------------------------------------------------


def test_a_channel_postgresql_cannot_carry_is_refused_up_front(cqrs_engine: Engine) -> None:
    too_long = "cqrs_events_for_the_order_service_in_the_eu_west_region_replica1"
    assert len(too_long) == 64
    with pytest.raises(ConfigurationError, match="63 bytes"):
        Settings(notify_channel=too_long)
    with pytest.raises(ConfigurationError):
        Notifier(cqrs_engine, too_long)
    with pytest.raises(ConfigurationError):
        Listener(cqrs_engine, too_long)
    with pytest.raises(ConfigurationError):
        ProjectionRunner(cqrs_engine, [], channel=too_long, listen=False)


def test_a_hint_that_fails_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cqrs.projections.notify")
    dead = create_engine("postgresql+psycopg://app:S3cr3t@127.0.0.1:1/nowhere")
    notifier = Notifier(dead, "cqrs_events")
    try:
        notifier.poke()
        _wait_until(lambda: notifier.failed >= 1, "the failed hint")
        notifier.poke()
        _wait_until(lambda: notifier.failed >= 2, "the second failed hint")
    finally:
        notifier.close()
        dead.dispose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once until hints go out again, not once per commit
    assert "not sent" in warnings[0] and "S3cr3t" not in warnings[0]


# -- streams whose stored versions are inconsistent -----------------------------------------


def _raw_event(engine: Engine, stream_id: str, version: int) -> None:
    """What a bad import does: an event row written behind the store's back."""
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
                 "data) VALUES (gen_random_uuid(), :s, 'defects', :v, 'defects.counted', "
                 "'{\"key\": \"x\", \"n\": 0}')"),
            {"s": stream_id, "v": version},
        )  # fmt: skip


def _append_expecting(engine: Engine, stream_id: str, expected: int) -> None:
    with Session(engine) as s, s.begin():
        store.append(s, stream_id, [Counted("x", 9)], expected_version=expected)


def _version(engine: Engine, stream_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT version FROM streams WHERE stream_id = :s"),
                         {"s": stream_id}).scalar_one()
        )  # fmt: skip


def _loaded_version(engine: Engine, stream_id: str) -> int:
    """The version a writer that loads the stream expects: the events it read."""
    with engine.connect() as conn:
        return len(store.read_stream(conn, stream_id))


def test_a_duplicated_version_is_named_instead_of_retried(log_engine: Engine) -> None:
    _append(log_engine, "dup", Counted("x", 1), Counted("x", 2))
    _raw_event(log_engine, "dup", 2)
    expected = _loaded_version(log_engine, "dup")
    assert expected == 3
    with pytest.raises(StreamVersionsInconsistent) as raised:
        _append_expecting(log_engine, "dup", expected)
    err = raised.value
    assert not isinstance(err, ConcurrencyError)  # RetryOnConflict must not retry it
    assert (err.stream_id, err.version, err.duplicated, err.missing, err.beyond) == (
        "dup", 2, [2], [], [],
    )  # fmt: skip
    assert "versions stored more than once [2]" in str(err)
    assert "Repair the rows" in str(err) and "cqrs explain cqrs-stream-versions" in str(err)
    assert _version(log_engine, "dup") == 2  # nothing written


def test_a_gap_and_a_version_past_the_head_are_named(log_engine: Engine) -> None:
    _append(log_engine, "gap", Counted("x", 1), Counted("x", 2), Counted("x", 3))
    with log_engine.begin() as conn:
        conn.execute(text("DELETE FROM events WHERE stream_id = 'gap' AND version = 2"))
    with pytest.raises(StreamVersionsInconsistent) as raised:
        _append_expecting(log_engine, "gap", _loaded_version(log_engine, "gap"))
    assert (raised.value.missing, raised.value.duplicated) == ([2], [])

    _append(log_engine, "past", Counted("x", 1))
    _raw_event(log_engine, "past", 7)
    with pytest.raises(StreamVersionsInconsistent) as raised:
        _append_expecting(log_engine, "past", _loaded_version(log_engine, "past"))
    assert raised.value.beyond == [7] and "versions outside 1..1 [7]" in str(raised.value)


def test_a_real_conflict_is_still_a_concurrency_error(log_engine: Engine) -> None:
    _append(log_engine, "ok", Counted("x", 1), Counted("x", 2))
    with pytest.raises(ConcurrencyError) as raised:
        _append_expecting(log_engine, "ok", 1)
    assert type(raised.value) is ConcurrencyError
    assert (raised.value.expected, raised.value.actual) == (1, 2)


def test_a_missing_prefix_is_inconsistent_only_for_a_writer_that_counted_from_one(
    log_engine: Engine,
) -> None:
    # What `partitions archive --force` leaves: the oldest versions gone from the live log.
    _append(log_engine, "old", *[Counted("x", i) for i in range(4)])
    with log_engine.begin() as conn:
        conn.execute(text("DELETE FROM events WHERE stream_id = 'old' AND version <= 2"))
    # a writer that counted the two events left can never match version 4
    with pytest.raises(StreamVersionsInconsistent) as raised:
        _append_expecting(log_engine, "old", _loaded_version(log_engine, "old"))
    assert raised.value.missing == [1, 2]
    # a writer that started from a snapshot at version 3 merely lost a race: retry works
    with pytest.raises(ConcurrencyError) as conflict:
        _append_expecting(log_engine, "old", 3)
    assert type(conflict.value) is ConcurrencyError
    _append_expecting(log_engine, "old", 4)


def test_a_stream_row_without_its_events_is_inconsistent(log_engine: Engine) -> None:
    with log_engine.begin() as conn:
        conn.execute(text("INSERT INTO streams (stream_id, stream_type, version) "
                          "VALUES ('hollow', 'defects', 2)"))  # fmt: skip
    with pytest.raises(StreamVersionsInconsistent) as raised:
        _append_expecting(log_engine, "hollow", _loaded_version(log_engine, "hollow"))
    assert raised.value.missing == [1, 2]

    _append(log_engine, "short", Counted("x", 1), Counted("x", 2))
    with log_engine.begin() as conn:
        conn.execute(text("UPDATE streams SET version = 4 WHERE stream_id = 'short'"))
    with pytest.raises(StreamVersionsInconsistent) as raised:
        _append_expecting(log_engine, "short", _loaded_version(log_engine, "short"))
    assert raised.value.missing == [3, 4]


def test_a_command_on_a_duplicated_stream_fails_at_once_with_the_versions(
    cqrs_engine: Engine,
) -> None:
    seen: list[CommandMetrics] = []
    bus = make_bus(middleware=[MetricsHook(seen.append), RetryOnConflict(attempts=5)])
    with Session(cqrs_engine) as session:
        bus.dispatch(PlaceOrder("o-dup", "c-1", Decimal(5)), session)
    with cqrs_engine.begin() as conn:  # a bad import copies the first event once more
        conn.execute(
            text("INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
                 "data) SELECT gen_random_uuid(), stream_id, stream_type, version, event_type, "
                 "data FROM events WHERE stream_id = 'order-o-dup'")
        )  # fmt: skip
    with Session(cqrs_engine) as session, pytest.raises(StreamVersionsInconsistent) as raised:
        bus.dispatch(ShipOrder("o-dup"), session)
    assert raised.value.duplicated == [1]
    assert seen[-1].status == "error" and seen[-1].attempts == 1  # not retried
