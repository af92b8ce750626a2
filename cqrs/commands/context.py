"""Public: what middleware sees of a command in flight, and what dispatch produced.

>>> ctx = CommandContext(command="c", session=None, command_id="id-1",
...                      correlation_id="id-1", causation_id="id-1")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs
from sqlalchemy.orm import Session

from cqrs.events.model import Event, RecordedEvent

R = TypeVar("R")


def command_type_name(command_type: type) -> str:
    """The stable name of a command class: its ``command_type`` attribute or its qualname."""
    name = getattr(command_type, "command_type", None)
    return name if isinstance(name, str) else command_type.__qualname__


@attrs.define
class CommandContext:
    """One dispatch of one command, handed down the middleware chain.

    ``idempotent`` is true when the caller gave a command id: it is then
    recorded in ``processed_commands`` and a repeat returns the first result.
    ``attempt`` counts runs of the handler (retries on conflicts add to it);
    ``sleep`` is how retry middleware waits (a greenlet-friendly sleep under
    asyncio). ``owns_transaction`` is false when the command runs inside the
    caller's open transaction (a SAVEPOINT of it): a conflict that only a fresh
    transaction resolves is then the caller's to retry. ``extra`` is free
    space for middleware. ``unresolved`` is what the last run would have returned
    when its COMMIT was lost (:class:`~cqrs.errors.CommitOutcomeUnknown`): the next
    run of an idempotent command looks the command id up and answers it when that
    commit did go through.
    """

    command: Any
    session: Session
    command_id: str
    correlation_id: str
    causation_id: str
    idempotent: bool = False
    owns_transaction: bool = True
    attempt: int = 0
    sleep: Callable[[float], None] = time.sleep
    extra: dict[str, Any] = attrs.Factory(dict)
    unresolved: CommandOutcome[Any] | None = None

    @property
    def command_type(self) -> str:
        """The command's stable type name."""
        return command_type_name(type(self.command))

    @property
    def event_metadata(self) -> dict[str, str]:
        """The metadata every event of this command carries."""
        return {
            "command_id": self.command_id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }


@attrs.frozen
class CommandOutcome(Generic[R]):
    """The result of a dispatch: the handler's return value and what was appended.

    ``replayed`` is true when the command id had been processed before: then
    ``result`` is the first run's result and ``recorded`` is empty.
    """

    result: R
    recorded: tuple[RecordedEvent[Event], ...]
    command_id: str
    replayed: bool = False
    attempts: int = 1
