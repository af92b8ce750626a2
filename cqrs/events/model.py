"""Public: what an event is, before and after it is stored.

Declare events as small frozen attrs classes with a stable type name (the
``@event`` decorator lives with the registry it fills, ``cqrs.events.registry``)::

    >>> from decimal import Decimal
    >>> from cqrs.events import Event, EventRegistry, event
    >>> registry = EventRegistry()
    >>> @event("order.placed", registry=registry)
    ... class OrderPlaced(Event):
    ...     order_id: str
    ...     total: Decimal
    >>> OrderPlaced(order_id="o-1", total=Decimal("9.50")).event_type
    'order.placed'

The name, not the import path, is what the log stores: renaming the class
does not break stored data (``aliases=`` keeps older names readable).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

import attrs

from cqrs.errors import InvalidInput
from cqrs.events.ids import uuid7


@attrs.frozen
class Event:
    """Base class of domain events. Subclasses are declared with :func:`event`.

    ``extra_fields`` says what decoding does with stored fields the class does
    not declare: ``"forbid"`` (an ``EventDecodeError``), ``"ignore"`` (dropped),
    or ``None`` for the codec's default (``"forbid"`` unless the ``EventCodec``
    was built with ``extra_fields="ignore"``). See docs/guides/events.md.
    """

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    extra_fields: ClassVar[Literal["forbid", "ignore"] | None] = None


E = TypeVar("E", bound=Event)
E_co = TypeVar("E_co", bound=Event, covariant=True)


@attrs.frozen(order=True)
class Position:
    """A place in the global log: ``(transaction_id, global_position)``.

    Positions order the way subscribers read: by committing transaction id
    first, then by sequence. ``str(position)`` is a token a web client can
    carry back to ask for read-your-writes.

    >>> p = Position(812, 40)
    >>> Position.parse(str(p)) == p
    True
    """

    transaction_id: int
    global_position: int

    def __str__(self) -> str:
        return f"{self.transaction_id}:{self.global_position}"

    @classmethod
    def parse(cls, token: str) -> Position:
        """Read a token made by ``str(position)``."""
        try:
            xid, pos = token.split(":")
            return cls(int(xid), int(pos))
        except (ValueError, AttributeError):
            raise InvalidInput(
                f"{token!r} is not a position token; pass the str() of a Position"
            ) from None


START = Position(0, 0)
"""The position before the first event."""


@attrs.frozen
class NewEvent(Generic[E_co]):
    """An event on its way into the log, with the id and metadata it will carry.

    Pass a bare event to ``append`` and it is wrapped with a fresh UUIDv7;
    wrap it yourself to fix the id (re-sending the same ids is then a no-op).
    """

    event: E_co
    event_id: uuid.UUID = attrs.field(factory=uuid7)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RecordedEvent(Generic[E_co]):
    """An event as read back from the log.

    ``recorded_at`` is when it was stored, in the session's time zone; in a
    session whose zone is a name of UTC (``UTC``, ``Etc/UTC``, ...) it carries
    ``datetime.timezone.utc`` (``cqrs.store.timestamps``).
    """

    event_id: uuid.UUID
    stream_id: str
    stream_type: str
    version: int
    position: Position
    event_type: str
    schema_version: int
    event: E_co
    metadata: Mapping[str, Any]
    recorded_at: datetime

    @property
    def global_position(self) -> int:
        return self.position.global_position

    @property
    def correlation_id(self) -> str | None:
        value = self.metadata.get("correlation_id")
        return None if value is None else str(value)

    @property
    def causation_id(self) -> str | None:
        value = self.metadata.get("causation_id")
        return None if value is None else str(value)
