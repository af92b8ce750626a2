"""Internal: events, the registry, upcasters, the JSON codec, ids and positions (no database)."""

from __future__ import annotations

import copy
import enum
import json
import pickle
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest

from cqrs import START, Event, EventRegistry, NewEvent, Position, RecordedEvent, event, uuid7
from cqrs.errors import (
    EventRegistrationError,
    InvalidInput,
    SerializationError,
    UnknownEventType,
)
from cqrs.events import EventCodec

registry = EventRegistry()


class Status(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Money:
    amount: Decimal
    currency: str


@attrs.frozen
class Line:
    sku: str
    price: Money
    tags: tuple[str, ...] = ()


@event("unit.everything", registry=registry)
class Everything(Event):
    total: Decimal
    at: datetime
    day: date
    ref: uuid.UUID
    status: Status
    level: Level
    lines: tuple[Line, ...]
    pair: tuple[int, str]
    maybe: str | None = None


@event("unit.loose", registry=registry)
class Loose(Event):
    value: Any = None


def _everything() -> Everything:
    return Everything(
        total=Decimal("0.1000000000000000000000000001"),
        at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        day=date(2026, 2, 28),
        ref=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        status=Status.CLOSED,
        level=Level.HIGH,
        lines=(
            Line("a", Money(Decimal("1.10"), "EUR"), ("x",)),
            Line("b", Money(Decimal(0), "USD")),
        ),
        pair=(7, "seven"),
    )


def _round_trip(codec: EventCodec, e: Event) -> tuple[Event, dict[str, Any]]:
    name, version, text = codec.encode(e)
    data = json.loads(text)
    return codec.decode(name, version, data, stream_id="s-1", position=1), data


def test_codec_round_trips_every_supported_type() -> None:
    codec = EventCodec(registry)
    original = _everything()
    back, data = _round_trip(codec, original)
    assert back == original
    assert isinstance(back, Everything)
    assert back.at.utcoffset() == timedelta(hours=-3, minutes=-30)
    assert isinstance(back.lines, tuple) and isinstance(back.lines[0].price, Money)
    assert isinstance(back.pair, tuple) and back.level is Level.HIGH
    # the stored JSON form: exact decimals as strings, offsets kept, enums by value
    assert data["total"] == "0.1000000000000000000000000001"
    assert data["at"] == "2026-01-02T03:04:05.678901-03:30"
    assert data["day"] == "2026-02-28"
    assert (data["status"], data["level"]) == ("closed", 2)
    assert data["lines"][0] == {
        "sku": "a",
        "price": {"amount": "1.10", "currency": "EUR"},
        "tags": ["x"],
    }
    assert data["pair"] == [7, "seven"] and data["maybe"] is None


def test_codec_encode_names_and_versions() -> None:
    name, version, text = EventCodec(registry).encode(Loose("é"))
    assert (name, version) == ("unit.loose", 1)
    assert text == '{"value":"é"}'  # compact, unescaped


@pytest.mark.parametrize("value", [{1, 2}, float("nan"), float("inf"), object()], ids=repr)
def test_codec_refuses_what_json_cannot_hold(value: Any) -> None:
    with pytest.raises(SerializationError, match="does not serialise") as info:
        EventCodec(registry).encode(Loose(value))
    assert info.value.code == "cqrs-serialization"


def test_codec_refuses_a_lone_surrogate() -> None:
    with pytest.raises(SerializationError, match="lone surrogate") as info:
        EventCodec(registry).encode(Loose("ok \ud800"))
    assert info.value.code == "cqrs-serialization"


def test_codec_refuses_bad_metadata() -> None:
    codec = EventCodec(registry)
    assert json.loads(codec.encode_metadata({"id": uuid.UUID(int=1), "n": 1})) == {
        "id": "00000000-0000-0000-0000-000000000001",
        "n": 1,
    }
    with pytest.raises(SerializationError, match="metadata"):
        codec.encode_metadata({"x": {1, 2}})


def test_decode_unknown_type_names_type_stream_and_position() -> None:
    with pytest.raises(UnknownEventType) as info:
        EventCodec(registry).decode("unit.nope", 1, {}, stream_id="order-9", position=42)
    err = info.value
    assert (err.event_type, err.stream_id, err.global_position) == ("unit.nope", "order-9", 42)
    assert err.position is None  # a bare global position is not a read_all token
    assert "order-9" in str(err) and "42" in str(err) and "types=" in str(err)


def test_decode_payload_that_does_not_fit() -> None:
    with pytest.raises(SerializationError, match="upcaster"):
        EventCodec(registry).decode("unit.everything", 1, {"total": "1"}, stream_id="s", position=3)


def test_unregistered_class_cannot_be_encoded() -> None:
    @attrs.frozen
    class Stray(Event):
        x: int

    with pytest.raises(EventRegistrationError, match="@event"):
        EventCodec(registry).encode(Stray(1))


# -- the decorator and the registry ----------------------------------------------


def test_event_decorator_makes_frozen_attrs_with_a_stable_name() -> None:
    reg = EventRegistry()

    @event("unit.placed", version=3, aliases=["unit.old_placed"], registry=reg)
    class Placed(Event):
        order_id: str

    placed = Placed("o-1")
    assert (Placed.event_type, Placed.schema_version) == ("unit.placed", 3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        placed.order_id = "o-2"  # type: ignore[misc]
    assert reg.resolve("unit.placed") is Placed and reg.resolve("unit.old_placed") is Placed
    assert reg.name_of(Placed) == "unit.placed"
    assert reg.names() == ["unit.old_placed", "unit.placed"]
    assert "unit.placed" in reg and "unit.other" not in reg
    assert reg.resolve("unit.other") is None


@pytest.mark.parametrize("name", ["", None, 5])
def test_event_decorator_rejects_bad_names(name: Any) -> None:
    with pytest.raises(EventRegistrationError):
        event(name, registry=EventRegistry())


def test_event_decorator_rejects_bad_versions_and_non_events() -> None:
    with pytest.raises(EventRegistrationError, match="version"):
        event("unit.v0", version=0, registry=EventRegistry())
    with pytest.raises(EventRegistrationError, match="subclass"):
        event("unit.plain", registry=EventRegistry())(object)  # type: ignore[type-var]


def test_registry_refuses_a_name_taken_by_another_class() -> None:
    reg = EventRegistry()

    @event("unit.taken", registry=reg)
    class First(Event):
        pass

    with pytest.raises(EventRegistrationError, match="already registered"):

        @event("unit.taken", registry=reg)
        class Second(Event):
            pass


def test_upcasters_chain_and_refuse_gaps_and_future_versions() -> None:
    reg = EventRegistry()

    @event("unit.user", version=3, registry=reg)
    class User(Event):
        user_id: str
        email: str
        verified: bool

    @reg.upcaster("unit.user", from_version=1)
    def _v1(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "email": ""}

    @reg.upcaster("unit.user", from_version=2)
    def _v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "verified": bool(data["email"])}

    assert reg.upcast("unit.user", 1, {"user_id": "u"}) == {
        "user_id": "u",
        "email": "",
        "verified": False,
    }
    codec = EventCodec(reg)
    assert codec.decode(
        "unit.user", 2, {"user_id": "u", "email": "a@b"}, stream_id="s", position=1
    ) == User("u", "a@b", True)
    with pytest.raises(SerializationError, match="newer than"):
        reg.upcast("unit.user", 4, {})
    with pytest.raises(EventRegistrationError, match="already exists"):
        reg.upcaster("unit.user", from_version=1)(_v1)

    gap = EventRegistry()

    @event("unit.gap", version=3, registry=gap)
    class Gap(Event):
        a: int

    @gap.upcaster("unit.gap", from_version=1)
    def _only_first(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(SerializationError, match="from_version=2"):
        gap.upcast("unit.gap", 1, {"a": 1})


def test_upcasters_apply_to_alias_names() -> None:
    reg = EventRegistry()

    @event("unit.new_name", version=2, aliases=["unit.old_name"], registry=reg)
    class Renamed(Event):
        title: str

    @reg.upcaster("unit.new_name", from_version=1)
    def _title(data: dict[str, Any]) -> dict[str, Any]:
        return {"title": data["name"]}

    decoded = EventCodec(reg).decode("unit.old_name", 1, {"name": "t"}, stream_id="s", position=1)
    assert decoded == Renamed("t")


# -- ids, positions, wrappers ------------------------------------------------------


def test_uuid7_is_version_7_rfc_variant_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(200)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert len(set(ids)) == len(ids)
    millis = [u.int >> 80 for u in ids]
    assert millis == sorted(millis)
    now = int(datetime.now(UTC).timestamp() * 1000)
    assert abs(millis[-1] - now) < 60_000


def test_uuid7_ids_built_without_init_behave_as_uuid_objects() -> None:
    # ids are made without UUID.__init__ (cqrs.events.ids): they must be whole UUIDs
    from cqrs.events.ids import uuid7s

    for made in [uuid7(), *uuid7s(50)]:
        again = uuid.UUID(str(made))
        assert made == again and hash(made) == hash(again) and made.int == again.int
        assert made.is_safe is uuid.SafeUUID.unknown
        assert made.version == 7 and made.variant == uuid.RFC_4122
        assert pickle.loads(pickle.dumps(made)) == made
        assert copy.deepcopy(made) == made
    batch = uuid7s(50)
    assert len(set(batch)) == 50
    assert len({u.int >> 80 for u in batch}) == 1  # one millisecond for the batch
    with pytest.raises(TypeError):
        batch[0].int = 5  # type: ignore[misc]  # still immutable


def test_position_orders_by_transaction_then_sequence_and_round_trips() -> None:
    positions = [Position(10, 5), Position(9, 99), Position(10, 2), START]
    assert sorted(positions) == [START, Position(9, 99), Position(10, 2), Position(10, 5)]
    assert str(Position(812, 40)) == "812:40"
    assert Position.parse("812:40") == Position(812, 40)


@pytest.mark.parametrize("token", ["", "1", "a:b", "1:2:3", None])
def test_position_parse_rejects_garbage(token: Any) -> None:
    with pytest.raises(InvalidInput, match="position token"):
        Position.parse(token)


def test_new_event_defaults_and_recorded_event_properties() -> None:
    first, second = NewEvent(Loose(1)), NewEvent(Loose(1))
    assert first.event_id != second.event_id and first.event_id.version == 7
    assert first.metadata == {}
    recorded = RecordedEvent(
        uuid7(), "s-1", "s", 1, Position(3, 4), "unit.loose", 1, Loose(1),
        {"correlation_id": uuid.UUID(int=5), "causation_id": "c"}, datetime.now(UTC),
    )  # fmt: skip
    assert recorded.global_position == 4
    assert recorded.correlation_id == str(uuid.UUID(int=5))
    assert recorded.causation_id == "c"
    bare = attrs.evolve(recorded, metadata={})
    assert (bare.correlation_id, bare.causation_id) == (None, None)
