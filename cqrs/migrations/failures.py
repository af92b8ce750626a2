"""Internal: toolkit errors that the ``alembic`` command prints as one ``FAILED: ...`` line.

The ``alembic`` command line catches only ``alembic.util.CommandError`` and shows a
traceback for anything else. ``for_alembic(ConfigurationError)`` answers a subclass
of both, so the error stays a typed ``cqrs.errors`` exception (same class tree,
same code) for Python callers and reads as a one-line failure at the shell::

    >>> from cqrs.errors import ConfigurationError
    >>> from alembic.util import CommandError
    >>> err = for_alembic(ConfigurationError)("bad wiring")
    >>> isinstance(err, ConfigurationError), isinstance(err, CommandError)
    (True, True)
"""

from __future__ import annotations

from typing import TypeVar, cast

from alembic.util import CommandError as AlembicCommandError

from cqrs.errors import CqrsError

E = TypeVar("E", bound=CqrsError)

_MADE: dict[type[CqrsError], type[CqrsError]] = {}


def for_alembic(error: type[E]) -> type[E]:
    """``error``, also an ``alembic.util.CommandError`` (one class per ``error``)."""
    made = _MADE.get(error)
    if made is None:
        made = type(error.__name__, (error, AlembicCommandError), {"__module__": __name__})
        _MADE[error] = made
    return cast("type[E]", made)
