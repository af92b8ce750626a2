"""Internal: events to JSON-ready dicts and back, strictly.

Decimals travel as strings (no float rounding), datetimes as ISO 8601 with
their offset, UUIDs as strings, enums by value, tuples as lists. Encoding
goes through cattrs after a check that every field holds a value of its
declared type (``EventEncodeError``); decoding goes through a strict decoder
compiled once per class (``cqrs.events.strict``) that never changes a stored
value to make it fit (``EventDecodeError``, naming stream, version, position
and field). See docs/guides/events.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import cattrs

from cqrs import jsontext
from cqrs.errors import (
    EventDecodeError,
    EventEncodeError,
    SerializationError,
    UnknownEventType,
)
from cqrs.events.model import Event, Position
from cqrs.events.registry import EventRegistry, Payload
from cqrs.events.strict import Compiler, ExtraFields, Mismatch
from cqrs.events.strict import show as _show


def make_converter() -> cattrs.Converter:
    """A cattrs converter with the toolkit's JSON conventions."""
    conv = cattrs.Converter()
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(Decimal, _decimal)
    conv.register_unstructure_hook(uuid.UUID, str)
    conv.register_structure_hook(
        uuid.UUID, lambda v, _: v if isinstance(v, uuid.UUID) else uuid.UUID(v)
    )
    conv.register_unstructure_hook(datetime, datetime.isoformat)
    conv.register_structure_hook(
        datetime, lambda v, _: v if isinstance(v, datetime) else datetime.fromisoformat(v)
    )
    conv.register_unstructure_hook(date, date.isoformat)
    conv.register_structure_hook(
        date, lambda v, _: v if isinstance(v, date) else date.fromisoformat(v)
    )
    return conv


def _decimal(value: Any, _: Any) -> Decimal:
    # Decimals are stored as strings: skip the str() round trip for them.
    return Decimal(value) if type(value) is str else Decimal(str(value))


# The toolkit's JSON convention (cqrs.jsontext): compact, UTF-8 as is, no NaN.
_encode_json = jsontext.dumps


class EventCodec:
    """Encodes events for the log and decodes stored rows, upcasting on the way.

    Both ways are strict: ``encode`` refuses an event holding a value its
    field's type does not allow (``EventEncodeError``), ``decode`` refuses a
    stored payload that does not match its class exactly (``EventDecodeError``).
    ``extra_fields`` says what decoding does with stored fields a class does
    not declare when the class does not say it itself (``Event.extra_fields``):
    ``"forbid"`` (the default) or ``"ignore"``.

    >>> from cqrs.events import Event, EventRegistry, event
    >>> registry = EventRegistry()
    >>> @event("order.paid", registry=registry)
    ... class OrderPaid(Event):
    ...     paid: bool
    >>> codec = EventCodec(registry)
    >>> codec.decode("order.paid", 1, {"paid": False}, stream_id="order-1", position=7)
    OrderPaid(paid=False)
    >>> codec.decode("order.paid", 1, {"paid": "false"}, stream_id="order-1", position=7)
    Traceback (most recent call last):
    cqrs.errors.EventDecodeError: stored event 'order.paid' (stream 'order-1', position 7) field 'paid' cannot be read: expected true or false, got the string 'false'; ...
    """  # noqa: E501

    def __init__(
        self,
        registry: EventRegistry,
        converter: cattrs.Converter | None = None,
        *,
        extra_fields: ExtraFields = "forbid",
    ) -> None:
        if extra_fields not in ("forbid", "ignore"):
            raise ValueError(f"extra_fields must be 'forbid' or 'ignore', got {extra_fields!r}")
        self.registry = registry
        self.converter = converter or make_converter()
        self.extra_fields: ExtraFields = extra_fields
        self._compiler = Compiler(self.converter, extra_fields)
        # the compiler's caches, read directly on the hot paths (one call less per event)
        self._decoders = self._compiler.decoders
        self._checks = self._compiler.checks
        # Decoders by stored type name, with the schema version they read, for names
        # whose rows ``decode`` has read at their class's current version, valid while
        # ``registry.changes == current_at``. A reader of many rows
        # (``cqrs.store.rows.decode_row``) calls such a decoder directly and
        # ``decode`` when it raises or the row is not there: the same event or the
        # same error, one call less per event.
        self.current: dict[str, tuple[int, Callable[[Payload], Event]]] = {}
        self.current_at = registry.changes

    def encode(self, event: Event) -> tuple[str, int, str]:
        """Return ``(type name, schema version, JSON text)`` for ``event``.

        Raises ``EventEncodeError`` when a field holds a value of another type
        than declared (nothing is sent), ``SerializationError`` for what JSON
        or jsonb cannot hold.
        """
        cls = type(event)
        name = self.registry.name_of(cls)
        try:
            (self._checks.get(cls) or self._compiler.check(cls))(event)
        except Mismatch as exc:
            raise EventEncodeError(name, exc.where(), exc.problem) from None
        try:
            data = self.converter.unstructure(event)
            text = _encode_json(data)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"event {name!r} does not serialise to JSON: {exc}; use JSON-friendly field "
                "types (str, int, Decimal, datetime, UUID, enums, tuples, attrs classes) or "
                "register a hook on the codec's cattrs converter"
            ) from exc
        if "\\u0000" in text and _has_nul(data):
            raise SerializationError(
                f"event {name!r} holds a NUL character (U+0000), which PostgreSQL's jsonb "
                "cannot store; strip it, or encode binary data as base64 text"
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise SerializationError(
                    f"event {name!r} holds {exc.object[exc.start : exc.end]!r}, a lone "
                    "surrogate that is not UTF-8 text; decode the input that produced it "
                    "properly (it often comes from errors='surrogateescape')"
                ) from exc
        return name, cls.schema_version, text

    def encode_metadata(self, metadata: Mapping[str, Any]) -> str:
        data = self.converter.unstructure(dict(metadata))
        if _has_nul(data):
            raise SerializationError(
                "event metadata holds a NUL character (U+0000), which jsonb cannot store; "
                "strip it from the metadata values"
            )
        try:
            return _encode_json(data)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"event metadata does not serialise to JSON: {exc}; keep metadata values to "
                "strings, numbers, booleans, lists and dicts"
            ) from exc

    def decode(
        self,
        name: str,
        schema_version: int,
        data: Payload,
        *,
        stream_id: str,
        position: Position | int | None,
        version: int | None = None,
    ) -> Event:
        """Rebuild the event stored as ``name``, upcast to its class's schema version.

        Raises ``EventDecodeError`` (``UnknownEventType`` for a type name no class
        answers to) carrying ``stream_id``, ``version`` and ``position`` as given.
        """
        cls = self.registry.resolve(name)
        if cls is None:
            raise UnknownEventType(name, stream_id, position, version=version)
        try:
            if type(data) is not dict:
                raise Mismatch(f"the payload is {_show(data)}, not a JSON object")
            if schema_version != cls.schema_version:
                data = self._upcast(name, schema_version, data)
            decode = self._decoders.get(cls) or self._compiler.decoder(cls)
            event: Event = decode(data)
            if schema_version == cls.schema_version:
                if self.current_at != self.registry.changes:
                    self.current, self.current_at = {}, self.registry.changes
                self.current[name] = (schema_version, decode)
            return event
        except Mismatch as exc:
            problem, field = exc.problem, exc.where() or None
            fix: str | None = None
        except _Refused as exc:
            problem, field, fix = exc.problem, None, exc.fix
        except Exception as exc:  # the class's own validators, a converter hook
            problem, field = f"{cls.__qualname__} refused it: {exc!r}", None
            fix = None
        raise EventDecodeError(
            problem,
            event_type=name,
            stream_id=stream_id,
            version=version,
            position=position,
            field=field,
            **({"fix": fix} if fix else {}),
        )

    def unreadable(
        self,
        name: str,
        problem: str,
        *,
        stream_id: str,
        version: int | None,
        position: Position | int | None,
    ) -> EventDecodeError:
        """The error for a row whose JSON cannot be parsed or is not an object at all
        (``EventStore.decode`` raises it; the codec never saw the payload)."""
        return EventDecodeError(
            problem,
            event_type=name,
            stream_id=stream_id,
            version=version,
            position=position,
            fix="the row was not written by this toolkit's append; repair or remove it",
        )

    def _upcast(self, name: str, schema_version: int, data: Payload) -> Payload:
        try:
            lifted = self.registry.upcast(name, schema_version, data)
        except SerializationError as exc:
            raise _Refused(
                exc.message,
                "deploy the code that knows this version, or add the upcaster the message names",
            ) from None
        except Exception as exc:
            raise _Refused(
                f"an upcaster of {name!r} (from schema version {schema_version}) raised {exc!r}",
                "fix the upcaster (it must turn every stored shape of that version into the "
                "next one), or repair the row",
            ) from exc
        if type(lifted) is not dict:
            raise _Refused(
                f"the upcasters of {name!r} from schema version {schema_version} returned "
                f"{_show(lifted)}, not a dict",
                "make every upcaster return a dict",
            )
        return lifted


class _Refused(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def _has_nul(value: Any) -> bool:
    """Whether a JSON-ready value holds U+0000 in any string, key or value."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False
