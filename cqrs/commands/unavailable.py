"""Internal: tell a lost or unreachable database from other driver errors.

The command bus turns SQLAlchemy's ``OperationalError`` and friends into
:class:`~cqrs.errors.DatabaseUnavailable` (or
:class:`~cqrs.errors.CommitOutcomeUnknown` when the connection died during
COMMIT), keeping the driver's error as ``__cause__``::

    >>> from sqlalchemy.exc import OperationalError
    >>> err = OperationalError("SELECT 1", {}, Exception("connection refused"))
    >>> type(unavailable(err, committing=False)).__name__
    'DatabaseUnavailable'
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

from cqrs.errors import CommitOutcomeUnknown, DatabaseUnavailable

UNAVAILABLE_STATES = frozenset(
    {
        "57P01",  # admin_shutdown (also pg_terminate_backend)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, recovery)
        "53300",  # too_many_connections
    }
)
"""SQLSTATEs that mean the server is going away or not taking connections (and every
``08xxx`` connection exception)."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database was unreachable or the connection was lost."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith("08") or state in UNAVAILABLE_STATES
    # No SQLSTATE: the driver's own failures (refused, reset, closed), not the server's.
    return isinstance(exc, OperationalError)


def unavailable(exc: BaseException, *, committing: bool) -> DatabaseUnavailable | None:
    """The typed error for ``exc`` (``None`` when it is not an outage).

    ``committing``: the failure came while the transaction was being committed,
    so whether it committed is unknown.
    """
    if not is_unavailable(exc):
        return None
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None)
    lines = str(orig).strip().splitlines()
    detail = f"{type(orig).__name__}: {lines[0] if lines else 'connection lost'}"
    if isinstance(state, str):
        detail += f", SQLSTATE {state}"
    cls = CommitOutcomeUnknown if committing else DatabaseUnavailable
    return cls(detail, sqlstate=state if isinstance(state, str) else None)
