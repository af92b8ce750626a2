"""Public: the map between stored type names and event classes, and upcasters.

>>> from cqrs.events import Event, EventRegistry, event
>>> registry = EventRegistry()
>>> @event("user.created", version=2, registry=registry)
... class UserCreated(Event):
...     user_id: str
...     email: str
>>> @registry.upcaster("user.created", from_version=1)
... def _add_email(data):
...     return {**data, "email": ""}
>>> registry.upcast("user.created", 1, {"user_id": "u-1"})
{'user_id': 'u-1', 'email': ''}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, dataclass_transform

import attrs

from cqrs.errors import EventRegistrationError, SerializationError
from cqrs.events.model import Event

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
_C = TypeVar("_C", bound=type[Event])


class EventRegistry:
    """Stable type names for event classes, plus the upcaster chains."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[Event]] = {}
        self._names: dict[type[Event], str] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self.changes = 0
        """How many registrations this registry has seen: a codec's caches of
        decoders by type name hold while it is unchanged."""

    def register(
        self, cls: type[Event], name: str, *, version: int = 1, aliases: Iterable[str] = ()
    ) -> None:
        """Register ``cls`` under ``name`` (and older ``aliases`` for reading)."""
        for key in (name, *aliases):
            known = self._by_name.get(key)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise EventRegistrationError(
                    f"event type {key!r} is already registered to {known.__module__}."
                    f"{known.__qualname__}; pick another name for {cls.__qualname__}"
                )
            self._by_name[key] = cls
        self._names[cls] = name
        self.changes += 1

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        """Every registered type name (aliases included), sorted."""
        return sorted(self._by_name)

    def resolve(self, name: str) -> type[Event] | None:
        """The class stored as ``name``, or ``None``."""
        return self._by_name.get(name)

    def name_of(self, cls: type[Event]) -> str:
        """The stored type name of ``cls``."""
        try:
            return self._names[cls]
        except KeyError:
            raise EventRegistrationError(
                f"{cls.__qualname__} is not registered; decorate it with @event('type.name')"
            ) from None

    def upcaster(self, name: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorate a function lifting a stored ``name`` payload one schema version."""

        def decorate(fn: Upcaster) -> Upcaster:
            key = (name, from_version)
            if key in self._upcasters:
                raise EventRegistrationError(
                    f"an upcaster for {name!r} from version {from_version} already exists"
                )
            self._upcasters[key] = fn
            return fn

        return decorate

    def upcast(self, name: str, stored_version: int, data: Payload) -> Payload:
        """Lift ``data`` from ``stored_version`` to the registered class's version."""
        cls = self._by_name.get(name)
        target = cls.schema_version if cls is not None else stored_version
        canonical = self._names.get(cls, name) if cls is not None else name
        if stored_version > target:
            raise SerializationError(
                f"stored {name!r} payload has schema version {stored_version}, newer than "
                f"this code's {target}; deploy the newer event class before reading it"
            )
        version = stored_version
        while version < target:
            step = self._upcasters.get((canonical, version)) or self._upcasters.get((name, version))
            if step is None:
                raise SerializationError(
                    f"no upcaster lifts {canonical!r} from schema version {version} to "
                    f"{version + 1}; add @registry.upcaster({canonical!r}, from_version={version})"
                )
            data = step(data)
            version += 1
        return data


default_registry = EventRegistry()
"""The registry ``@event`` uses when none is given."""


@dataclass_transform(frozen_default=True, field_specifiers=(attrs.field, attrs.Factory))
def event(
    name: str,
    *,
    version: int = 1,
    aliases: Iterable[str] = (),
    registry: EventRegistry | None = None,
) -> Callable[[_C], _C]:
    """Make a class a frozen attrs event with a stable stored type name.

    ``version`` is the payload's schema version; register upcasters on the
    registry to lift older stored payloads (see :class:`EventRegistry`).
    """
    if not name or not isinstance(name, str):
        raise EventRegistrationError(f"event type name must be a non-empty string, got {name!r}")
    if version < 1:
        raise EventRegistrationError(f"event {name!r}: schema version must be >= 1, got {version}")

    def decorate(cls: _C) -> _C:
        if not (isinstance(cls, type) and issubclass(cls, Event)):
            raise EventRegistrationError(
                f"@event({name!r}) decorates {cls!r}, which does not subclass cqrs.Event"
            )
        frozen: _C = attrs.frozen(cls)
        frozen.event_type = name
        frozen.schema_version = version
        (registry or default_registry).register(frozen, name, version=version, aliases=aliases)
        return frozen

    return decorate
