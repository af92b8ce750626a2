"""Internal: reading the log on PostgreSQL, in both layouts.

The gap-free cursor held back by an open transaction, ``horizon`` and ``head``,
partition pruning of ``read_stream``, stored JSON forms, rows written by older
code (unknown types, old schema versions) and long paging runs.
"""

from __future__ import annotations

import enum
import json
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import START, Event, EventRegistry, EventStore, Position, Settings, event
from cqrs.errors import SerializationError, StreamNotFound, UnknownEventType
from cqrs.store import partitions, sql
from cqrs.testing import isolated_schema
from cqrs.testing.conformance import wait_for_horizon

registry = EventRegistry()


class Tier(enum.Enum):
    GOLD = "gold"


@attrs.frozen
class Address:
    city: str
    lines: tuple[str, ...]


@event("read.noted", registry=registry)
class Noted(Event):
    n: int


@event("read.profile", version=2, aliases=["read.old_profile"], registry=registry)
class Profile(Event):
    name: str
    tier: Tier
    balance: Decimal
    since: datetime
    ref: uuid.UUID
    address: Address


@registry.upcaster("read.profile", from_version=1)
def _v1_to_v2(data: dict[str, object]) -> dict[str, object]:
    city = data.pop("city")  # popped before the copy: a stored field left over is an error
    return {**data, "tier": "gold", "address": {"city": str(city), "lines": []}}


@pytest.fixture
def store() -> EventStore:
    return EventStore(registry=registry)


def _append(engine: Engine, store: EventStore, stream_id: str, *ns: int) -> None:
    with Session(engine) as s, s.begin():
        store.append(s, stream_id, [Noted(n) for n in ns])


def _settle(engine: Engine, store: EventStore) -> None:
    """Wait until every event written is readable (others' transactions on a shared
    server can hold the horizon back for a moment)."""
    with engine.connect() as conn:
        head = store.head(conn)
    wait_for_horizon(engine, head.transaction_id)


def _read_all(engine: Engine, store: EventStore, settle: bool = True, **kw: object) -> list[int]:
    if settle:
        _settle(engine, store)
    with engine.connect() as conn:
        return [e.event.n for e in store.read_all(conn, **kw)]  # type: ignore[arg-type, attr-defined]


def test_an_open_transaction_holds_readers_back(log_engine: Engine, store: EventStore) -> None:
    _append(log_engine, store, "a-1", 1)
    _settle(log_engine, store)
    with Session(log_engine) as slow, slow.begin():
        store.append(slow, "slow-1", [Noted(2)])  # older transaction, still open
        slow_xid = int(slow.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())
        _append(log_engine, store, "b-1", 3)  # younger, commits first
        with log_engine.connect() as conn:
            assert store.horizon(conn) <= slow_xid
            assert store.head(conn).global_position >= 3
        assert _read_all(log_engine, store, settle=False) == [
            1
        ]  # 3 waits behind the open transaction
    assert _read_all(log_engine, store) == [1, 2, 3]  # commit order ≠ position order
    with log_engine.connect() as conn:
        events = store.read_all(conn)
        assert store.horizon(conn) > events[-1].position.transaction_id
        assert store.head(conn) == max(e.position for e in events)
    assert [e.position for e in events] == sorted(e.position for e in events)


def test_rolled_back_events_never_appear(log_engine: Engine, store: EventStore) -> None:
    _append(log_engine, store, "a-1", 1)
    with Session(log_engine) as s:
        s.begin()
        store.append(s, "a-1", [Noted(2)])
        s.rollback()
    _append(log_engine, store, "a-1", 3)
    assert _read_all(log_engine, store) == [1, 3]
    with Session(log_engine) as s:
        assert [e.version for e in store.read_stream(s, "a-1")] == [1, 2]


def test_paging_many_transactions(log_engine: Engine, store: EventStore) -> None:
    for i in range(40):
        _append(log_engine, store, f"p-{i % 4}", *range(i * 3, i * 3 + i % 3 + 1))
    everything = _read_all(log_engine, store)
    for limit in (1, 7, 50):
        seen: list[int] = []
        cursor = START
        with log_engine.connect() as conn:
            while page := store.read_all(conn, after=cursor, limit=limit):
                assert len(page) <= limit
                seen.extend(e.event.n for e in page)  # type: ignore[attr-defined]
                cursor = page[-1].position
        assert seen == everything
    assert len(everything) == sum(i % 3 + 1 for i in range(40))
    resumed = Position.parse(str(_positions(log_engine, store)[9]))
    assert _read_all(log_engine, store, after=resumed) == everything[10:]


def _positions(engine: Engine, store: EventStore) -> list[Position]:
    with engine.connect() as conn:
        return [e.position for e in store.read_all(conn)]


def test_stream_info_and_missing_streams(log_engine: Engine, store: EventStore) -> None:
    _append(log_engine, store, "order-3", 1, 2)
    with Session(log_engine) as s:
        info = store.stream_info(s, "order-3")
        now = s.execute(text("SELECT now()")).scalar_one()
        assert info is not None
        assert (info.stream_id, info.stream_type, info.version, info.archived) == (
            "order-3",
            "order",
            2,
            False,
        )
        assert abs(info.created_at - now) < timedelta(minutes=5)
        assert store.stream_info(s, "order-4") is None
        with pytest.raises(StreamNotFound, match="NO_STREAM"):
            store.read_stream(s, "order-4")


def _insert_raw(engine: Engine, stream_id: str, event_type: str, sv: int, data: object) -> int:
    """A row as older code (or another service) wrote it; returns its global position."""
    with engine.begin() as conn:
        version = conn.execute(
            text(
                "INSERT INTO streams AS s (stream_id, stream_type, version) VALUES (:sid, 'x', 1) "
                "ON CONFLICT (stream_id) DO UPDATE SET version = s.version + 1 RETURNING version"
            ),
            {"sid": stream_id},
        ).scalar_one()
        return int(
            conn.execute(
                text(
                    "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
                    "schema_version, data) VALUES (:eid, :sid, 'x', :v, :t, :sv, "
                    "CAST(:data AS jsonb)) RETURNING global_position"
                ),
                {
                    "eid": uuid.uuid4(),
                    "sid": stream_id,
                    "v": version,
                    "t": event_type,
                    "sv": sv,
                    "data": json.dumps(data),
                },
            ).scalar_one()
        )


def test_unknown_event_type_names_its_place(log_engine: Engine, store: EventStore) -> None:
    _append(log_engine, store, "x-1", 1)
    position = _insert_raw(log_engine, "x-1", "legacy.gone", 1, {"a": 1})
    _settle(log_engine, store)
    with log_engine.connect() as conn:
        with pytest.raises(UnknownEventType) as info:
            store.read_all(conn)
        err = info.value
        assert (err.event_type, err.stream_id, err.global_position) == (
            "legacy.gone",
            "x-1",
            position,
        )
        assert err.position is not None and err.position.global_position == position
        with pytest.raises(UnknownEventType):
            store.read_stream(conn, "x-1")
        assert [e.version for e in store.read_stream(conn, "x-1", to_version=1)] == [1]
        assert [e.event_type for e in store.read_all(conn, types=["read.noted"])] == ["read.noted"]


def test_old_payloads_are_upcast_on_read(log_engine: Engine, store: EventStore) -> None:
    ref = uuid.uuid4()
    old = {"name": "Ada", "balance": "10.50", "since": "2020-01-01T00:00:00+02:00", "ref": str(ref)}
    _insert_raw(log_engine, "profile-1", "read.old_profile", 1, {**old, "city": "London"})
    with log_engine.connect() as conn:
        (read,) = store.read_stream(conn, "profile-1")
    assert read.event == Profile(
        name="Ada",
        tier=Tier.GOLD,
        balance=Decimal("10.50"),
        since=datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=2))),
        ref=ref,
        address=Address("London", ()),
    )
    assert (read.event_type, read.schema_version) == ("read.old_profile", 1)
    _insert_raw(log_engine, "profile-1", "read.profile", 3, old)
    with log_engine.connect() as conn, pytest.raises(SerializationError, match="newer than"):
        store.read_stream(conn, "profile-1")


def test_stored_json_form(log_engine: Engine, store: EventStore) -> None:
    profile = Profile(
        name="Grace",
        tier=Tier.GOLD,
        balance=Decimal("0.30"),
        since=datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-7))),
        ref=uuid.UUID(int=1),
        address=Address("Arlington", ("1 Main St", "Apt 2")),
    )
    with Session(log_engine) as s, s.begin():
        store.append(s, "profile-2", [profile])
    with log_engine.connect() as conn:
        data, sv = conn.execute(text("SELECT data, schema_version FROM events")).one()
        (read,) = store.read_stream(conn, "profile-2")
    assert sv == 2 and read.event == profile
    assert data == {
        "name": "Grace",
        "tier": "gold",
        "balance": "0.30",
        "since": "2026-05-06T07:08:09-07:00",
        "ref": "00000000-0000-0000-0000-000000000001",
        "address": {"city": "Arlington", "lines": ["1 Main St", "Apt 2"]},
    }


def test_read_stream_skips_partitions_older_than_the_stream(cqrs_database_url: str) -> None:
    store = EventStore(registry=registry)
    with isolated_schema(cqrs_database_url, Settings(partitioning="range")) as engine:
        with engine.begin() as conn:
            today = conn.execute(text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
            old = partitions.add_months(date(today.year, today.month, 1), -3)
            partitions.ensure_months(conn, old, 1)
        _append(engine, store, "new-1", 1, 2)
        with engine.connect() as conn:
            plan = [
                r[0]
                for r in conn.execute(
                    text(
                        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                        + str(sql.READ_STREAM)
                    ),
                    {"sid": "new-1", "lo": 1, "hi": 10},
                )
            ]
        old_scan = [line for line in plan if partitions.month_partition_name(old) in line]
        assert old_scan and all("never executed" in line for line in old_scan), plan
