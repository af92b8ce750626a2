"""Internal: a list of events checked and encoded for an append, by every event store.

:func:`encode_batch` turns what a caller passes to ``append`` (events, or
``NewEvent`` wrappers with ids and metadata of their own) into the parallel
lists the append statement sends, refusing bad input before anything is
sent. ``EventStore`` and ``InMemoryEventStore`` both call it, so they accept
and refuse exactly the same input.

    >>> from cqrs.events import EventCodec, EventRegistry, event, Event
    >>> registry = EventRegistry()
    >>> @event("doc.pinged", registry=registry)
    ... class Pinged(Event):
    ...     n: int
    >>> batch = encode_batch(EventCodec(registry), Settings(), [Pinged(1)], {"by": "doc"})
    >>> batch.types, batch.datas, batch.metas
    (['doc.pinged'], ['{"n":1}'], ['{"by":"doc"}'])
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from cqrs import errors
from cqrs.config import Settings
from cqrs.events.codec import EventCodec
from cqrs.events.ids import uuid7s
from cqrs.events.model import Event, NewEvent
from cqrs.store import validation


@attrs.define
class EncodedBatch:
    """The events of one append as parallel lists (``datas``/``metas`` are JSON texts)."""

    ids: list[uuid.UUID] = attrs.Factory(list)
    events: list[Event] = attrs.Factory(list)
    metadata: list[dict[str, Any]] = attrs.Factory(list)
    types: list[str] = attrs.Factory(list)
    schema_versions: list[int] = attrs.Factory(list)
    datas: list[str] = attrs.Factory(list)
    metas: list[str] = attrs.Factory(list)
    explicit_ids: bool = False  # some ids were chosen by the caller (NewEvent)


def encode_batch(
    codec: EventCodec,
    settings: Settings,
    events: Sequence[Event | NewEvent[Event]],
    metadata: Mapping[str, Any] | None,
    *,
    stream_type: object = None,
) -> EncodedBatch:
    """Check and encode ``events``; ``metadata`` is merged into each event's own.

    Every rule of ``cqrs.store.validation`` about an append's arguments runs
    here (stream type, metadata, nesting, type names), before anything is sent.
    """
    events = validation.check_append(events, settings, stream_type=stream_type, metadata=metadata)
    if isinstance(events, (Event, NewEvent)):
        raise errors.InvalidInput("append takes a list of events; wrap a single event in [ ]")
    batch = EncodedBatch()
    shared = dict(metadata or {})
    limit = settings.max_payload_bytes
    encode = codec.encode
    # Plain events (no NewEvent) share one metadata text, encoded once, and get
    # their ids from one draw of randomness.
    shared_meta = codec.encode_metadata(shared) if shared and events else "{}"
    fresh = iter(uuid7s(sum(1 for item in events if not isinstance(item, NewEvent))))
    ids, kept, metas, types = batch.ids, batch.events, batch.metadata, batch.types
    versions, datas, texts = batch.schema_versions, batch.datas, batch.metas
    for item in events:
        if isinstance(item, Event):
            event, event_id, meta = item, next(fresh), shared_meta
            merged = dict(shared)
        elif isinstance(item, NewEvent):
            event, event_id, own = item.event, item.event_id, item.metadata
            batch.explicit_ids = True
            if not isinstance(event_id, uuid.UUID):
                raise errors.InvalidInput(
                    f"NewEvent.event_id must be a uuid.UUID, got {event_id!r}; leave it out "
                    "for a fresh UUIDv7 or pass uuid.UUID(text)"
                )
            merged = {**shared, **own}
            meta = codec.encode_metadata(merged) if own else shared_meta
        else:
            raise errors.InvalidInput(
                f"append got {item!r}; pass instances of @event classes or NewEvent"
            )
        name, version, data = encode(event)
        # UTF-8 takes at most 4 bytes a character: count bytes only near the limit
        if 4 * (len(data) + len(meta)) > limit:
            size = len(data.encode()) + len(meta.encode())
            if size > limit:
                raise errors.PayloadTooLarge(name, size, limit)
        kept.append(event)
        metas.append(merged)
        ids.append(event_id)
        types.append(name)
        versions.append(version)
        datas.append(data)
        texts.append(meta)
    if batch.explicit_ids and len(set(ids)) != len(ids):
        raise errors.InvalidInput("the same event id appears twice in one append")
    validation.check_event_types(batch.types, settings)
    return batch
