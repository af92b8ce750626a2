"""Internal: the input checks every event store runs before it sends anything.

Pure functions of the input and :class:`~cqrs.config.Settings`, shared by
``EventStore`` and ``InMemoryEventStore`` so both refuse the same input with
the same typed error.

    >>> check_stream_id("order-1", Settings())
    >>> check_stream_id("", Settings())
    Traceback (most recent call last):
    ...
    cqrs.errors.InvalidStreamId: invalid stream id '': is empty; ...
"""

from __future__ import annotations

from cqrs import errors
from cqrs.config import Settings

INT32_MAX = 2**31 - 1
"""The largest stream version (``events.version`` and ``streams.version`` are ``int``)."""


def check_stream_id(stream_id: object, settings: Settings) -> None:
    """Raise :class:`~cqrs.errors.InvalidStreamId` unless ``stream_id`` is usable."""
    if not isinstance(stream_id, str):
        raise errors.InvalidStreamId(stream_id, f"is a {type(stream_id).__name__}, not a str")
    if not stream_id.strip():
        raise errors.InvalidStreamId(stream_id, "is empty")
    if len(stream_id) > settings.max_id_length:
        raise errors.InvalidStreamId(
            stream_id[:40] + "...",
            f"is {len(stream_id)} characters, over {settings.max_id_length}",
        )
    if "\x00" in stream_id:
        raise errors.InvalidStreamId(stream_id, "contains a NUL character")
