"""Public: ``Aggregate``, the base of event-sourced write models, and ``@applies``.

Command methods check rules and ``record()`` events; state changes only in
``@applies`` handlers, so replaying the log (or a snapshot plus the tail)
rebuilds exactly the state the commands produced::

    >>> from decimal import Decimal
    >>> from cqrs.events import Event, EventRegistry, event
    >>> reg = EventRegistry()
    >>> @event("doc.order.placed", registry=reg)
    ... class OrderPlaced(Event):
    ...     order_id: str
    ...     total: Decimal
    >>> class Order(Aggregate):
    ...     aggregate_type = "order"
    ...     status: str = "new"
    ...     total: Decimal = Decimal(0)
    ...     def place(self, total: Decimal) -> None:
    ...         self.record(OrderPlaced(order_id=self.id, total=total))
    ...     @applies(OrderPlaced)
    ...     def _placed(self, e: OrderPlaced) -> None:
    ...         self.status, self.total = "placed", e.total
    >>> order = Order("o-1")
    >>> order.place(Decimal("9.50"))
    >>> (order.status, order.version, order.stream_id)
    ('placed', 1, 'order-o-1')

Stream ids: an aggregate of type ``order`` with id ``o-1`` lives in stream
``order-o-1`` (``f"{aggregate_type}-{id}"``), so the store's default stream
type (the part before the first dash) is the aggregate type.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar, get_type_hints

from cqrs.errors import AggregateError, UnhandledEvent
from cqrs.events.model import Event

E = TypeVar("E", bound=Event)
A = TypeVar("A", bound="Aggregate")
Handler = Callable[[Any, Any], None]

_APPLIES_ATTR = "__cqrs_applies__"
_RESERVED = frozenset({"id", "version"})


def applies(
    event_type: type[E],
) -> Callable[[Callable[[A, E], None]], Callable[[A, E], None]]:
    """Mark an aggregate method as the state change for ``event_type``.

    Exactly one handler per event type and aggregate class; subclasses may
    override a parent's handler. An empty handler is fine for events that
    change no state.
    """
    if not (isinstance(event_type, type) and issubclass(event_type, Event)):
        raise AggregateError(
            f"@applies takes an event class, got {event_type!r}; pass the class itself"
        )

    def decorate(fn: Callable[[A, E], None]) -> Callable[[A, E], None]:
        setattr(fn, _APPLIES_ATTR, event_type)
        return fn

    return decorate


class Aggregate:
    """Base class of event-sourced aggregates.

    Class attributes a subclass may set:

    ``aggregate_type``
        stable type name, stored with streams and snapshots (never the import
        path). Defaults to the lower-cased class name; set it explicitly so a
        rename keeps working. Must not contain a dash.
    ``snapshot_every``
        take a snapshot each time the version crosses a multiple of this
        (``None``: never).
    ``snapshot_version``
        schema version of the snapshot state; bump it when the state's shape
        changes and old snapshots are ignored (the aggregate is rebuilt from
        events).

    State lives in annotated class attributes with defaults (mutable defaults
    are copied per instance) or in attributes set by an ``__init__(self, id)``
    that calls ``super().__init__(id)``.
    """

    aggregate_type: ClassVar[str] = "aggregate"
    snapshot_every: ClassVar[int | None] = None
    snapshot_version: ClassVar[int] = 1
    _handlers: ClassVar[dict[type[Event], Handler]] = {}
    _mutable_defaults: ClassVar[tuple[str, ...]] = ()

    id: str
    version: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "aggregate_type" not in cls.__dict__:
            cls.aggregate_type = cls.__name__.lower()
        if not cls.aggregate_type or "-" in cls.aggregate_type:
            raise AggregateError(
                f"{cls.__qualname__}.aggregate_type {cls.aggregate_type!r} must be a non-empty "
                "name without '-' (the stream id is '<aggregate_type>-<id>')"
            )
        if cls.snapshot_every is not None and cls.snapshot_every < 1:
            raise AggregateError(
                f"{cls.__qualname__}.snapshot_every must be >= 1 or None, got {cls.snapshot_every}"
            )
        handlers: dict[type[Event], Handler] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                event_type = getattr(value, _APPLIES_ATTR, None)
                if event_type is not None:
                    handlers[event_type] = value
        cls._handlers = handlers
        cls._mutable_defaults = tuple(
            name
            for name in _state_names(cls)
            if isinstance(getattr(cls, name, None), (list, dict, set))
        )

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self._pending: list[Event] = []
        for name in self._mutable_defaults:
            setattr(self, name, copy.copy(getattr(type(self), name)))

    # -- identity ------------------------------------------------------------

    @classmethod
    def stream_id_for(cls, id: str) -> str:
        """The stream holding the aggregate ``id``: ``f"{aggregate_type}-{id}"``."""
        return f"{cls.aggregate_type}-{id}"

    @property
    def stream_id(self) -> str:
        """This aggregate's stream id."""
        return self.stream_id_for(self.id)

    # -- events --------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Apply ``event`` to the state and keep it for the next save."""
        self._dispatch(event)
        self._pending.append(event)
        self.version += 1

    @property
    def pending_events(self) -> tuple[Event, ...]:
        """Events recorded since the aggregate was loaded or last saved."""
        return tuple(self._pending)

    @property
    def loaded_version(self) -> int:
        """The stream version the pending events build on (the expected version)."""
        return self.version - len(self._pending)

    def mark_saved(self) -> None:
        """Forget the pending events (the repository calls this after appending)."""
        self._pending.clear()

    def replay(self, events: Iterable[Event], *, from_version: int | None = None) -> None:
        """Apply stored events (not pending ones); ``version`` ends at the last one's."""
        if from_version is not None:
            self.version = from_version
        for event in events:
            self._dispatch(event)
            self.version += 1

    @classmethod
    def from_events(cls: type[A], id: str, events: Iterable[Event]) -> A:
        """Rebuild an aggregate from its full history."""
        aggregate = cls(id)
        aggregate.replay(events)
        return aggregate

    def _dispatch(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise UnhandledEvent(
                f"{type(self).__qualname__} ({self.aggregate_type!r})",
                getattr(event, "event_type", type(event).__qualname__),
            )
        handler(self, event)

    # -- state and snapshots -------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The aggregate's state: every public instance attribute except id and version."""
        names = set(_state_annotations(type(self))) | set(vars(self))
        return {
            name: getattr(self, name)
            for name in sorted(names)
            if not name.startswith("_") and name not in _RESERVED and hasattr(self, name)
        }

    def snapshot_state(self) -> dict[str, Any]:
        """The state to snapshot; override together with :meth:`restore_state`."""
        return self.state()

    def restore_state(self, state: dict[str, Any]) -> None:
        """Set the state from a (structured) snapshot; override to customise."""
        for name, value in state.items():
            setattr(self, name, value)

    @classmethod
    def state_types(cls) -> dict[str, Any]:
        """Annotated state attributes and their types (used to read snapshots back)."""
        return _state_annotations(cls)


_BASE_NAMES = frozenset({"aggregate_type", "snapshot_every", "snapshot_version", *_RESERVED})
_types_cache: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()


def _state_names(cls: type) -> list[str]:
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if name.startswith("_") or name in _BASE_NAMES or "ClassVar" in str(annotation):
                continue
            names[name] = None
    return list(names)


def _state_annotations(cls: type) -> dict[str, Any]:
    cached = _types_cache.get(cls)
    if cached is None:
        try:
            hints = get_type_hints(cls)
        except Exception:  # unresolvable forward references: read values back untyped
            hints = {}
        cached = {name: hints.get(name, Any) for name in _state_names(cls)}
        _types_cache[cls] = cached
    return cached
