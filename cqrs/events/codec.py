"""Internal: events to JSON-ready dicts and back, through cattrs.

Decimals travel as strings (no float rounding), datetimes as ISO 8601 with
their offset, UUIDs as strings, enums by value, tuples as lists.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import cattrs

from cqrs import jsontext
from cqrs.errors import SerializationError, UnknownEventType
from cqrs.events.model import Event
from cqrs.events.registry import EventRegistry, Payload


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
    """Encodes events for the log and decodes stored rows, upcasting on the way."""

    def __init__(self, registry: EventRegistry, converter: cattrs.Converter | None = None) -> None:
        self.registry = registry
        self.converter = converter or make_converter()

    def encode(self, event: Event) -> tuple[str, int, str]:
        """Return ``(type name, schema version, JSON text)`` for ``event``."""
        cls = type(event)
        name = self.registry.name_of(cls)
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
        self, name: str, schema_version: int, data: Payload, *, stream_id: str, position: int
    ) -> Event:
        """Rebuild the event stored as ``name``; raises ``UnknownEventType``."""
        cls = self.registry.resolve(name)
        if cls is None:
            raise UnknownEventType(name, stream_id, position)
        if schema_version != cls.schema_version:
            data = self.registry.upcast(name, schema_version, data)
        try:
            return self.converter.structure(data, cls)
        except Exception as exc:
            raise SerializationError(
                f"stored {name!r} (stream {stream_id!r}, position {position}) does not fit "
                f"{cls.__qualname__}: {exc}; add an upcaster for the old shape"
            ) from exc


def _has_nul(value: Any) -> bool:
    """Whether a JSON-ready value holds U+0000 in any string, key or value."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False
