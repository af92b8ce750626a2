"""Public: ``run_in_transaction``, a unit of work of your own, retried on conflicts.

The command bus retries a conflicting command itself when it owns the
transaction. When your code writes in its own transaction and dispatches
commands inside it (a service writing its own table first, two commands
that must commit together), some conflicts can only be resolved by a fresh
transaction: :class:`~cqrs.errors.AppendOrderConflict` and, under
``REPEATABLE READ``, :class:`~cqrs.errors.TransactionConflict`. Run such work
through ``run_in_transaction``::

    >>> def place(session: Session) -> str:
    ...     session.add(AuditRow(action="place"))                 # your own table first
    ...     return bus.dispatch(PlaceOrder("o-1", "c-1", Decimal(5)), session)
    >>> run_in_transaction(sessionmaker(engine), place)
    'o-1'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cqrs.commands.middleware import RetryOnConflict
from cqrs.errors import ConcurrencyError, StreamAlreadyExists

R = TypeVar("R")
log = logging.getLogger("cqrs.commands")


def run_in_transaction(
    sessions: sessionmaker[Session] | Engine,
    work: Callable[[Session], R],
    *,
    retry: RetryOnConflict | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> R:
    """Run ``work(session)`` in a new transaction and commit; on a conflict, again.

    Each run gets a new session and transaction (so a newer transaction id).
    ``retry`` sets the attempts and back-off (``RetryOnConflict()`` by
    default); the last :class:`~cqrs.errors.ConcurrencyError` is re-raised.
    Anything else ``work`` raises rolls back and propagates at once.
    """
    policy = retry or RetryOnConflict()
    factory = sessionmaker(sessions) if isinstance(sessions, Engine) else sessions
    for attempt in range(1, policy.attempts + 1):
        try:
            with factory() as session, session.begin():
                return work(session)
        except ConcurrencyError as exc:
            if attempt == policy.attempts or isinstance(exc, StreamAlreadyExists):
                raise
            log.debug("transaction conflicted on %s (attempt %d), retrying", exc.stream_id, attempt)
            sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
