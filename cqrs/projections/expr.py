"""Public: ``E``, small expressions that take column values from a recorded event.

``E.order_id`` reads the event's ``order_id`` field; names the event does not
have fall back to the recorded envelope (``E.stream_id``, ``E.version``,
``E.recorded_at``, ``E.event_id``, ``E.position``, ``E.global_position``).
Expressions combine with arithmetic, and ``E(fn)`` wraps any function of the
``RecordedEvent``::

    >>> from cqrs.projections.expr import E
    >>> total_with_tax = E.total * 2 + 1
    >>> meta = E.meta("tenant")
    >>> upper = E(lambda r: r.stream_id.upper())
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from cqrs.events.model import Event, RecordedEvent

Recorded = RecordedEvent[Event]


class Expr:
    """A value computed from one recorded event; evaluated per event, in Python."""

    def evaluate(self, recorded: Recorded) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _bin(self, other: Any, op: Callable[[Any, Any], Any], swap: bool = False) -> Expr:
        left, right = (lift(other), self) if swap else (self, lift(other))
        return _BinOp(left, right, op)

    def __add__(self, other: Any) -> Expr:
        return self._bin(other, operator.add)

    def __radd__(self, other: Any) -> Expr:
        return self._bin(other, operator.add, swap=True)

    def __sub__(self, other: Any) -> Expr:
        return self._bin(other, operator.sub)

    def __rsub__(self, other: Any) -> Expr:
        return self._bin(other, operator.sub, swap=True)

    def __mul__(self, other: Any) -> Expr:
        return self._bin(other, operator.mul)

    def __rmul__(self, other: Any) -> Expr:
        return self._bin(other, operator.mul, swap=True)

    def __truediv__(self, other: Any) -> Expr:
        return self._bin(other, operator.truediv)

    def __neg__(self) -> Expr:
        return _Call(lambda r: -self.evaluate(r))


class _Const(Expr):
    def __init__(self, value: Any) -> None:
        self.value = value

    def evaluate(self, recorded: Recorded) -> Any:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)


class _Field(Expr):
    def __init__(self, name: str) -> None:
        self.name = name
        # Event classes whose instances cannot have the attribute (slots, no class
        # attribute of that name, no __getattr__): go straight to the envelope.
        # A try/except that fails costs more than the rest of the lookup.
        self._envelope_for: set[type[Any]] = set()

    def evaluate(self, recorded: Recorded) -> Any:
        event = recorded.event
        if type(event) not in self._envelope_for:
            try:
                return getattr(event, self.name)
            except AttributeError:
                if _never_has(type(event), self.name):
                    self._envelope_for.add(type(event))
        try:
            return getattr(recorded, self.name)
        except AttributeError:
            from cqrs.errors import ProjectionError

            raise ProjectionError(
                f"E.{self.name}: event {recorded.event_type!r} has no field {self.name!r} "
                "and the recorded envelope has no such attribute; fix the projection's mapping"
            ) from None

    def __repr__(self) -> str:
        return f"E.{self.name}"


def _never_has(cls: type[Any], name: str) -> bool:
    """Whether no instance of ``cls`` can have attribute ``name`` (so lookups always fail)."""
    return (
        "__dict__" not in dir(cls)
        and not hasattr(cls, name)
        and not hasattr(cls, "__getattr__")
        and cls.__getattribute__ is object.__getattribute__  # type: ignore[comparison-overlap]
    )


class _Meta(Expr):
    def __init__(self, key: str, default: Any) -> None:
        self.key = key
        self.default = default

    def evaluate(self, recorded: Recorded) -> Any:
        return recorded.metadata.get(self.key, self.default)


class _BinOp(Expr):
    def __init__(self, left: Expr, right: Expr, op: Callable[[Any, Any], Any]) -> None:
        self.left, self.right, self.op = left, right, op

    def evaluate(self, recorded: Recorded) -> Any:
        return self.op(self.left.evaluate(recorded), self.right.evaluate(recorded))


class _Call(Expr):
    def __init__(self, fn: Callable[[Recorded], Any]) -> None:
        self.fn = fn

    def evaluate(self, recorded: Recorded) -> Any:
        return self.fn(recorded)


class _EventRef:
    """The ``E`` object: attribute access builds field expressions."""

    def __getattr__(self, name: str) -> Expr:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Field(name)

    def __call__(self, fn: Callable[[Recorded], Any]) -> Expr:
        """An expression computed by ``fn(recorded_event)``."""
        return _Call(fn)

    def meta(self, key: str, default: Any = None) -> Expr:
        """The value of ``key`` in the event's metadata."""
        return _Meta(key, default)

    def const(self, value: Any) -> Expr:
        """A constant (plain values are constants already; this is for clarity)."""
        return _Const(value)


E = _EventRef()


def lift(value: Any) -> Expr:
    """``value`` as an expression: expressions stay, anything else is a constant."""
    return value if isinstance(value, Expr) else _Const(value)
