"""Internal: the relay's row decoder: an event that leaves as stored is not decoded.

A selected event without a mapping function leaves with its payload as
stored, unless an upcaster must lift it first (its stored schema version
differs from its class's). Decoding such a row into its attrs class only to
encode it again would cost more per event than publishing it, so
:class:`RelayStore` hands those rows to the relay as a :class:`StoredPayload`
(the class and the JSON text) and decodes every other row as the wrapped
store does. The relay's ``message`` is the only code that sees a
``StoredPayload``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from cqrs.events.model import Event, RecordedEvent
from cqrs.store.event_store import EventStore
from cqrs.store.rows import EventRow, loads, recorded_from

if TYPE_CHECKING:
    from cqrs.relay.relay import Relay


@attrs.frozen
class StoredPayload:
    """An event's stored JSON text, standing in for the decoded event."""

    cls: type[Event]
    text: str


_UNSET: Any = object()


class RelayStore(EventStore):
    """``store``'s decoding, except for rows the ``relays`` send out verbatim."""

    def __init__(self, store: EventStore, relays: Sequence[Relay]) -> None:
        super().__init__(settings=store.settings, codec=store.codec)
        self.base = store
        self.relays = list(relays)
        self._verbatim: dict[tuple[str, int], type[Event] | None] = {}

    def verbatim(self, event_type: str, schema_version: int) -> type[Event] | None:
        """The class of rows of this type and version that leave as stored, else ``None``."""
        key = (event_type, schema_version)
        found = self._verbatim.get(key, _UNSET)
        if found is _UNSET:
            found = None
            cls = self.codec.registry.resolve(event_type)
            if cls is not None and cls.schema_version == schema_version:
                routes = [r.route_for(cls) for r in self.relays]
                if any(routes) and all(r is None or r.mapper is None for r in routes):
                    found = cls
            self._verbatim[key] = found
        return cast("type[Event] | None", found)

    def decode(self, row: Sequence[Any]) -> RecordedEvent[Event]:
        stored = EventRow._make(row)
        data = stored.data
        cls = self.verbatim(stored.event_type, stored.schema_version) if type(data) is str else None
        if cls is None:
            return self.base.decode(row)
        meta = stored.metadata
        meta = loads(meta) if type(meta) is str else meta
        return recorded_from(stored, cast(Event, StoredPayload(cls, data)), meta)
