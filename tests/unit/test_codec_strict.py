"""Internal: the codec never changes a stored value to make it fit, and never stores one
that would read back as something else (no database; the store's bad rows are in
tests/integration/test_store_bad_rows.py)."""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import attrs
import pytest

from cqrs import Event, EventRegistry, Position, event
from cqrs.errors import (
    EventDecodeError,
    EventEncodeError,
    SerializationError,
    UnknownEventType,
)
from cqrs.events import EventCodec

registry = EventRegistry()


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@event("strict.order", registry=registry)
class Order(Event):
    paid: bool
    qty: int
    name: str


@event("strict.measure", registry=registry)
class Measure(Event):
    ratio: float


@attrs.frozen
class Money:
    amount: Decimal
    currency: str


@attrs.frozen
class Line:
    sku: str
    price: Money


@event("strict.everything", registry=registry)
class Everything(Event):
    total: Decimal
    at: datetime
    day: date
    ref: uuid.UUID
    colour: Colour
    level: Level
    lines: tuple[Line, ...]
    tags: tuple[str, ...]
    pair: tuple[int, str]
    counts: Mapping[str, int]
    kind: Literal["a", "b"]
    note: str | None = None
    extra_info: Any = None


@event("strict.tolerant", registry=registry)
class Tolerant(Event):
    extra_fields = "ignore"
    name: str


@attrs.frozen
class Inner:
    extra_fields: ClassVar[str] = "ignore"
    x: int


@event("strict.outer", registry=registry)
class Outer(Event):
    inner: Inner


@event("strict.defaulted", registry=registry)
class Defaulted(Event):
    name: str
    tags: tuple[str, ...] = ()


def _everything(**changes: Any) -> dict[str, Any]:
    good = {
        "total": "12.50",
        "at": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
        "ref": "12345678-1234-5678-1234-567812345678",
        "colour": "red",
        "level": 2,
        "lines": [{"sku": "a", "price": {"amount": "1.10", "currency": "EUR"}}],
        "tags": ["x"],
        "pair": [7, "seven"],
        "counts": {"a": 1},
        "kind": "a",
        "note": None,
        "extra_info": {"free": [1, "form"]},
    }
    good.update(changes)
    return good


def decode(name: str, data: Any, codec: EventCodec | None = None, sv: int = 1) -> Event:
    return (codec or EventCodec(registry)).decode(
        name, sv, data, stream_id="order-1", position=Position(812, 40), version=3
    )


def test_the_issue_example_is_refused_not_coerced() -> None:
    """``{"paid": "false", "qty": 3.7, "name": 123, "extra": 1}`` once read as
    ``paid=True, qty=3, name='123'``."""
    with pytest.raises(EventDecodeError) as info:
        decode("strict.order", {"paid": "false", "qty": 3.7, "name": 123, "extra": 1})
    err = info.value
    assert (err.stream_id, err.version, err.position) == ("order-1", 3, Position(812, 40))
    assert err.global_position == 40 and err.event_type == "strict.order"
    assert err.field == "extra" and err.code == "cqrs-event-decode"
    assert isinstance(err, SerializationError)
    text = str(err)
    assert "'order-1'" in text and "version 3" in text and "812:40" in text
    assert "read_all(after=err.position)" in text and "upcaster" in text


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"paid": "false", "qty": 3, "name": "n"}, "paid", "got the string 'false'"),
        ({"paid": 0, "qty": 3, "name": "n"}, "paid", "got the number 0"),
        ({"paid": False, "qty": 3.7, "name": "n"}, "qty", "got the number 3.7"),
        ({"paid": False, "qty": 3.0, "name": "n"}, "qty", "got the number 3.0"),
        ({"paid": False, "qty": 1e20, "name": "n"}, "qty", "got the number 1e+20"),
        ({"paid": False, "qty": "3", "name": "n"}, "qty", "got the string '3'"),
        ({"paid": False, "qty": True, "name": "n"}, "qty", "got true"),
        ({"paid": False, "qty": None, "name": "n"}, "qty", "got null"),
        ({"paid": False, "qty": 3, "name": 123}, "name", "got the number 123"),
        ({"paid": False, "qty": 3, "name": ["n"]}, "name", "got an array"),
        ({"paid": False, "qty": 3}, "name", "missing"),
        ({"paid": False, "qty": 3, "name": "n", "extra": 1}, "extra", "no field 'extra'"),
    ],
)
def test_wrong_types_missing_and_extra_fields(
    data: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(EventDecodeError) as info:
        decode("strict.order", data)
    assert info.value.field == field
    assert problem in info.value.problem


def test_good_payloads_decode_exactly() -> None:
    assert decode("strict.order", {"paid": False, "qty": 3, "name": "n"}) == Order(False, 3, "n")
    back = decode("strict.everything", _everything())
    assert isinstance(back, Everything)
    assert back.total == Decimal("12.50") and str(back.total) == "12.50"
    assert back.at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and back.day == date(2026, 1, 2)
    assert back.colour is Colour.RED and back.level is Level.HIGH
    assert back.lines == (Line("a", Money(Decimal("1.10"), "EUR")),)
    assert back.tags == ("x",) and back.pair == (7, "seven") and back.counts == {"a": 1}
    assert back.extra_info == {"free": [1, "form"]}


def test_floats_take_ints_and_large_numbers_stay_floats() -> None:
    # PostgreSQL prints the jsonb number 1e20 as 100000000000000000000.
    back = decode("strict.measure", {"ratio": 100000000000000000000})
    assert isinstance(back, Measure) and type(back.ratio) is float and back.ratio == 1e20
    assert decode("strict.measure", {"ratio": 3}) == Measure(3.0)
    assert type(decode("strict.measure", {"ratio": 1.5}).ratio) is float  # type: ignore[attr-defined]
    for bad in (True, "1.5", None, 10**400):
        with pytest.raises(EventDecodeError, match="ratio"):
            decode("strict.measure", {"ratio": bad})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"total": 12.5}, "total"),  # a Decimal travels as a string: a float would round
        ({"total": 12}, "total"),
        ({"total": "twelve"}, "total"),
        ({"at": 1767323045}, "at"),
        ({"at": "yesterday"}, "at"),
        ({"day": "2026-13-01"}, "day"),
        ({"ref": "not-a-uuid"}, "ref"),
        ({"ref": 5}, "ref"),
        ({"colour": "RED"}, "colour"),
        ({"level": 2.0}, "level"),  # IntEnum by value, of the value's JSON type
        ({"level": True}, "level"),
        ({"level": "2"}, "level"),
        ({"lines": "ab"}, "lines"),  # no iterating a string into a tuple
        ({"lines": [{"sku": "a", "price": {"amount": 1.1, "currency": "EUR"}}]},
         "lines[0].price.amount"),
        ({"lines": [{"sku": "a", "price": {"amount": "1", "currency": "E", "fx": 1}}]},
         "lines[0].price.fx"),
        ({"tags": ["x", 1]}, "tags[1]"),
        ({"tags": {"x": 1}}, "tags"),
        ({"pair": [7]}, "pair"),
        ({"pair": [7, 8]}, "pair[1]"),
        ({"counts": {"a": "1"}}, "counts.a"),
        ({"counts": [1]}, "counts"),
        ({"kind": "c"}, "kind"),
        ({"note": 5}, "note"),
    ],
    ids=repr,
)  # fmt: skip
def test_every_supported_type_is_strict(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(EventDecodeError) as info:
        decode("strict.everything", _everything(**changes))
    assert info.value.field == field, info.value


def test_defaults_fill_missing_fields() -> None:
    assert decode("strict.defaulted", {"name": "n"}) == Defaulted("n")
    assert decode("strict.defaulted", {"name": "n", "tags": ["t"]}) == Defaulted("n", ("t",))


def test_extra_fields_policy_per_class_and_per_codec() -> None:
    assert decode("strict.tolerant", {"name": "n", "later": 1}) == Tolerant("n")
    # a nested class follows its own setting; the event's is the codec's default here
    assert decode("strict.outer", {"inner": {"x": 1, "y": 2}}) == Outer(Inner(1))
    with pytest.raises(EventDecodeError, match="no field 'y'"):
        decode("strict.outer", {"inner": {"x": 1}, "y": 2})
    lenient = EventCodec(registry, extra_fields="ignore")
    assert decode("strict.order", {"paid": True, "qty": 1, "name": "n", "x": 1}, lenient) == Order(
        True, 1, "n"
    )
    # ignoring extra fields never relaxes the types of the declared ones
    with pytest.raises(EventDecodeError, match="paid"):
        decode("strict.order", {"paid": "true", "qty": 1, "name": "n", "x": 1}, lenient)
    with pytest.raises(ValueError, match="extra_fields"):
        EventCodec(registry, extra_fields="drop")  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", [[1, 2], "text", 7, None, True], ids=repr)
def test_a_payload_that_is_not_an_object(payload: Any) -> None:
    with pytest.raises(EventDecodeError, match="not a JSON object") as info:
        decode("strict.order", payload)
    assert info.value.field is None


def test_upcaster_failures_and_newer_versions_carry_the_place() -> None:
    reg = EventRegistry()

    @event("strict.renamed", version=3, registry=reg)
    class Renamed(Event):
        first: str

    @reg.upcaster("strict.renamed", from_version=1)
    def _explode(data: dict[str, Any]) -> dict[str, Any]:
        return {"first": data["name"].split()[0]}

    @reg.upcaster("strict.renamed", from_version=2)
    def _same(data: dict[str, Any]) -> Any:
        return data if "first" in data else ["not", "a", "dict"]

    codec = EventCodec(reg)
    assert decode("strict.renamed", {"name": "Ada L"}, codec, sv=1) == Renamed("Ada")
    cases = [
        (1, {"nom": "Ada"}, "raised KeyError('name')"),
        (2, {"x": 1}, "not a dict"),
        (4, {"first": "Ada"}, "newer than"),
    ]
    for sv, data, problem in cases:
        with pytest.raises(EventDecodeError, match=re.escape(problem)) as info:
            decode("strict.renamed", data, codec, sv=sv)
        assert (info.value.stream_id, info.value.position) == ("order-1", Position(812, 40))


def test_class_validators_are_decode_errors() -> None:
    reg = EventRegistry()

    @event("strict.validated", registry=reg)
    class Validated(Event):
        qty: int = attrs.field(validator=attrs.validators.gt(0))

    with pytest.raises(EventDecodeError, match="refused it") as info:
        decode("strict.validated", {"qty": 0}, EventCodec(reg))
    assert info.value.version == 3


def test_unknown_type_is_a_decode_error_with_a_token() -> None:
    with pytest.raises(UnknownEventType) as info:
        decode("strict.nope", {})
    assert isinstance(info.value, EventDecodeError)
    assert (info.value.position, info.value.version) == (Position(812, 40), 3)


def test_decoders_are_compiled_once_per_class() -> None:
    codec = EventCodec(registry)
    decode("strict.order", {"paid": True, "qty": 1, "name": "n"}, codec)
    first = codec._compiler.decoder(Order)
    decode("strict.order", {"paid": True, "qty": 2, "name": "n"}, codec)
    assert codec._compiler.decoder(Order) is first


# -- encoding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evt", "field"),
    [
        (Order(False, "3", "n"), "qty"),  # type: ignore[arg-type]
        (Order(False, True, "n"), "qty"),
        (Order(False, 3.0, "n"), "qty"),  # type: ignore[arg-type]
        (Order("false", 3, "n"), "paid"),  # type: ignore[arg-type]
        (Order(False, 3, 123), "name"),  # type: ignore[arg-type]
        (Measure(float("nan")), "ratio"),
        (Measure(float("inf")), "ratio"),
        (Measure(10**400), "ratio"),
        (Measure("1.5"), "ratio"),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_encode_refuses_values_of_the_wrong_type(evt: Event, field: str) -> None:
    with pytest.raises(EventEncodeError) as info:
        EventCodec(registry).encode(evt)
    assert info.value.field == field and info.value.code == "cqrs-event-encode"
    assert "nothing was written" in str(info.value)


def _good() -> Everything:
    return decode("strict.everything", _everything())  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"total": 12.5}, "total"),
        ({"total": 12}, "total"),
        ({"at": "2026-01-02"}, "at"),
        ({"day": datetime(2026, 1, 2, tzinfo=UTC)}, "day"),
        ({"ref": "12345678-1234-5678-1234-567812345678"}, "ref"),
        ({"colour": "red"}, "colour"),
        ({"lines": (Line("a", Money(1.1, "EUR")),)}, "lines[0].price.amount"),  # type: ignore[arg-type]
        ({"tags": ("x", 1)}, "tags[1]"),
        ({"tags": "xy"}, "tags"),
        ({"pair": (7,)}, "pair"),
        ({"counts": {1: 1}}, "counts"),
        ({"counts": {"a": "1"}}, "counts.a"),
        ({"kind": "c"}, "kind"),
        ({"note": 5}, "note"),
        ({"extra_info": {"a": {2: "b"}}}, "extra_info.a"),
    ],
    ids=repr,
)
def test_encode_checks_every_supported_type(changes: dict[str, Any], field: str) -> None:
    evt = attrs.evolve(_good(), **changes)
    with pytest.raises(EventEncodeError) as info:
        EventCodec(registry).encode(evt)
    assert info.value.field == field, info.value


def test_round_trip_of_valid_events() -> None:
    codec = EventCodec(registry)
    # a list in a tuple field stores fine (and reads back as a tuple)
    good = attrs.evolve(_good(), tags=["a", "b"])  # type: ignore[arg-type]
    name, sv, text = codec.encode(good)
    back = codec.decode(name, sv, json.loads(text), stream_id="s", position=1)
    assert back == attrs.evolve(good, tags=("a", "b"))
    assert codec.encode(Measure(3)) == ("strict.measure", 1, '{"ratio":3}')


# -- the slot-by-slot fast path (strict.slot_setters) ------------------------------------

fast_registry = EventRegistry()


@event("fast.plain", registry=fast_registry)
class FastPlain(Event):
    name: str
    amount: Decimal
    at: datetime


@event("fast.validated", registry=fast_registry)
class FastValidated(Event):
    n: int = attrs.field(validator=attrs.validators.gt(0))


@event("fast.post_init", registry=fast_registry)
class FastPostInit(Event):
    n: int

    def __attrs_post_init__(self) -> None:
        if self.n == 13:
            raise ValueError("unlucky")


@event("fast.converted", registry=fast_registry)
class FastConverted(Event):
    name: str = attrs.field(converter=str.strip)


@event("fast.defaulted", registry=fast_registry)
class FastDefaulted(Event):
    tags: tuple[str, ...] = attrs.field(factory=tuple)


def test_slot_setters_only_for_an_init_that_just_sets_the_fields() -> None:
    from cqrs.events.strict import slot_setters

    assert slot_setters(FastPlain, ["name", "amount", "at"]) is not None
    assert slot_setters(FastValidated, ["n"]) is None
    assert slot_setters(FastPostInit, ["n"]) is None
    assert slot_setters(FastConverted, ["name"]) is None
    assert slot_setters(FastDefaulted, ["tags"]) is None
    assert slot_setters(FastPlain, ["name", "amount"]) is None  # not every field


def test_the_fast_path_builds_what_the_init_builds() -> None:
    codec = EventCodec(fast_registry)
    stamp = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    doc = {"name": "a", "amount": "1.50", "at": stamp.isoformat()}
    got = codec.decode("fast.plain", 1, doc, stream_id="s", position=1)
    want = FastPlain("a", Decimal("1.50"), stamp)
    assert got == want and hash(got) == hash(want) and repr(got) == repr(want)
    assert type(got) is FastPlain and got.at.tzinfo is UTC
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        got.name = "b"  # type: ignore[misc]


def test_classes_with_init_logic_still_run_it_on_decode() -> None:
    codec = EventCodec(fast_registry)
    with pytest.raises(EventDecodeError, match="refused"):
        codec.decode("fast.validated", 1, {"n": 0}, stream_id="s", position=1)
    with pytest.raises(EventDecodeError, match="unlucky"):
        codec.decode("fast.post_init", 1, {"n": 13}, stream_id="s", position=1)
    assert codec.decode("fast.converted", 1, {"name": " x "}, stream_id="s", position=1) == (
        FastConverted("x")
    )
    assert codec.decode("fast.defaulted", 1, {}, stream_id="s", position=1) == FastDefaulted()


def _row(name: str, version: int, data: str, schema_version: int = 1) -> tuple[Any, ...]:
    """A row as the log's readers select it (cqrs.store.rows.EventRow's order)."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return (uuid.uuid4(), "s-1", "s", version, "7", version, name, schema_version, data, "{}", at)


def test_rows_read_after_a_good_one_still_get_the_full_error() -> None:
    from cqrs.store.rows import decode_row

    codec = EventCodec(registry)
    good = decode_row(codec, _row("strict.order", 1, '{"paid": true, "qty": 1, "name": "a"}'))
    assert good.event == Order(paid=True, qty=1, name="a")
    assert "strict.order" in codec.current  # later rows of the type take the shortcut
    with pytest.raises(EventDecodeError) as caught:
        decode_row(codec, _row("strict.order", 2, '{"paid": "yes", "qty": 1, "name": "a"}'))
    assert caught.value.field == "paid" and caught.value.version == 2
    with pytest.raises(EventDecodeError, match="declares no field"):
        decode_row(codec, _row("strict.order", 3, '{"paid": true, "qty": 1, "name": "a", "x": 1}'))


def test_rows_of_another_schema_version_are_upcast_not_read_by_the_shortcut() -> None:
    from cqrs.store.rows import decode_row

    local = EventRegistry()

    @event("shortcut.named", registry=local, version=2)
    class Named(Event):
        name: str

    @local.upcaster("shortcut.named", from_version=1)
    def _v1(data: dict[str, Any]) -> dict[str, Any]:
        return {"name": data["title"]}

    codec = EventCodec(local)
    assert decode_row(codec, _row("shortcut.named", 1, '{"name": "new"}', 2)).event == Named("new")
    old = decode_row(codec, _row("shortcut.named", 2, '{"title": "old"}', 1))
    assert old.event == Named("old")


def test_a_class_registered_again_under_its_name_is_the_one_rows_decode_to() -> None:
    from cqrs.store.rows import decode_row

    local = EventRegistry()

    @event("shortcut.renewed", registry=local)
    class Renewed(Event):
        n: int

    codec = EventCodec(local)
    first = decode_row(codec, _row("shortcut.renewed", 1, '{"n": 1}')).event
    assert type(first) is Renewed

    @event("shortcut.renewed", registry=local)  # the same class, defined again (a reload)
    class Renewed(Event):  # type: ignore[no-redef]
        n: int

    again = decode_row(codec, _row("shortcut.renewed", 2, '{"n": 2}')).event
    assert type(again) is Renewed and type(again) is not type(first)
