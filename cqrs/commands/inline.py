"""Public: what the unit of work calls to run a projection inline.

The unit of work calls ``apply_inline`` with the events it just appended, in
the same session and transaction, so the read model commits with the events.
The protocol is structural and belongs to its caller, the command side:
``cqrs.projections.Projection`` satisfies it without importing it, so the
command side never loads the projection runner.

    >>> class Counter:                      # any object with these two members
    ...     name = "counter"
    ...     def apply_inline(self, session, events):
    ...         self.seen = len(events)
    >>> isinstance(Counter(), InlineProjection)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

from cqrs.events.model import Event, RecordedEvent


@runtime_checkable
class InlineProjection(Protocol):
    """Anything that can apply freshly appended events inside the writer's transaction."""

    name: str

    def apply_inline(self, session: Session, events: Sequence[RecordedEvent[Event]]) -> None:
        """Apply ``events`` (log order) to the read model through ``session``."""
        ...
