"""Public: events, their stable names, their JSON form and upcasters."""

from cqrs.events.codec import EventCodec, make_converter
from cqrs.events.ids import uuid7
from cqrs.events.model import START, Event, NewEvent, Position, RecordedEvent
from cqrs.events.registry import EventRegistry, default_registry, event

__all__ = [
    "START",
    "Event",
    "EventCodec",
    "EventRegistry",
    "NewEvent",
    "Position",
    "RecordedEvent",
    "default_registry",
    "event",
    "make_converter",
    "uuid7",
]
