"""Public: command bus middleware: logging, a metrics hook, retry on conflicts and outages.

A middleware is any callable ``(ctx, call_next) -> CommandOutcome``. The bus
chains them in order around one *transactional run* of the handler, so a
retry middleware re-runs the whole command (reload, handle, append) in a
fresh transaction::

    >>> from cqrs.commands import CommandBus
    >>> bus = CommandBus(middleware=[
    ...     LoggingMiddleware(), MetricsHook(statsd_observe),
    ...     RetryOnUnavailable(max_seconds=60), RetryOnConflict(attempts=8),
    ... ])
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import attrs

from cqrs.backoff import delay as backoff_delay
from cqrs.commands.context import CommandContext, CommandOutcome
from cqrs.errors import (
    AppendOrderConflict,
    CommitOutcomeUnknown,
    ConcurrencyError,
    ConfigurationError,
    DatabaseUnavailable,
    StreamAlreadyExists,
    TransactionConflict,
)
from cqrs.errortext import message
from cqrs.redact import printable

Next = Callable[[CommandContext], CommandOutcome[Any]]
Middleware = Callable[[CommandContext, Next], CommandOutcome[Any]]

log = logging.getLogger("cqrs.commands")


@attrs.frozen
class LoggingMiddleware:
    """Logs each command: DEBUG when handled, WARNING (with the error) when it fails.

    The command id and the error text are logged through ``cqrs.redact.printable``:
    a line break or escape sequence in them cannot forge or garble a log line. A
    database error is logged without its parameters or the values PostgreSQL
    quotes (``cqrs.errortext``).
    """

    logger: logging.Logger = log

    def __call__(self, ctx: CommandContext, call_next: Next) -> CommandOutcome[Any]:
        started = time.perf_counter()
        try:
            outcome = call_next(ctx)
        except Exception as exc:
            self.logger.warning(
                "command %s %s failed after %d attempt(s): %s: %s",
                ctx.command_type, printable(ctx.command_id), ctx.attempt, type(exc).__name__,
                printable(message(exc)),
            )  # fmt: skip
            raise
        self.logger.debug(
            "command %s %s handled in %.1f ms, %d attempt(s), %d event(s)%s",
            ctx.command_type, printable(ctx.command_id), (time.perf_counter() - started) * 1000,
            outcome.attempts, len(outcome.recorded), " (replayed)" if outcome.replayed else "",
        )  # fmt: skip
        return outcome


@attrs.frozen
class CommandMetrics:
    """One observation handed to a :class:`MetricsHook`.

    ``status`` is ``"ok"``, ``"replayed"`` (idempotent repeat) or ``"error"``.
    """

    command_type: str
    seconds: float
    status: str
    attempts: int
    events: int
    error: str | None = None


@attrs.frozen
class MetricsHook:
    """Calls ``observe`` with a :class:`CommandMetrics` after every command.

    >>> seen = []
    >>> hook = MetricsHook(seen.append)
    """

    observe: Callable[[CommandMetrics], None]

    def __call__(self, ctx: CommandContext, call_next: Next) -> CommandOutcome[Any]:
        started = time.perf_counter()
        try:
            outcome = call_next(ctx)
        except Exception as exc:
            self.observe(
                CommandMetrics(
                    ctx.command_type, time.perf_counter() - started, "error", ctx.attempt, 0,
                    type(exc).__name__,
                )
            )  # fmt: skip
            raise
        status = "replayed" if outcome.replayed else "ok"
        self.observe(
            CommandMetrics(
                ctx.command_type, time.perf_counter() - started, status, outcome.attempts,
                len(outcome.recorded),
            )
        )  # fmt: skip
        return outcome


def _positive_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ConfigurationError(f"RetryOnConflict.{attribute.name} must be >= 1, got {value}")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ConfigurationError(f"RetryOnConflict.{attribute.name} must be >= 0, got {value}")


@attrs.frozen
class RetryOnConflict:
    """Re-runs the whole command when it hits a :class:`~cqrs.errors.ConcurrencyError`.

    At most ``attempts`` runs; before run ``n + 1`` it waits a random time up
    to ``min(max_delay, base_delay * 2 ** (n - 1))`` seconds (full jitter, so
    competing writers spread out). The last conflict is re-raised, and so is
    at once a conflict that a SAVEPOINT of the caller's transaction cannot
    resolve (:class:`~cqrs.errors.AppendOrderConflict`,
    :class:`~cqrs.errors.TransactionConflict`): retry the caller's whole
    transaction, for example with :func:`~cqrs.commands.run_in_transaction`.

    >>> RetryOnConflict(attempts=3).delay(2, random.Random(1)) <= 0.01
    True
    """

    attempts: int = attrs.field(default=5, validator=_positive_int)
    base_delay: float = attrs.field(default=0.005, validator=_non_negative)
    max_delay: float = attrs.field(default=0.25, validator=_non_negative)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before the run after ``attempt`` (1-based)."""
        return backoff_delay(attempt, self.base_delay, self.max_delay, (rng or random).uniform)

    def __call__(self, ctx: CommandContext, call_next: Next) -> CommandOutcome[Any]:
        for attempt in range(1, self.attempts + 1):
            try:
                return call_next(ctx)
            except ConcurrencyError as exc:
                if attempt == self.attempts or not _retryable_here(ctx, exc):
                    raise
                log.debug(
                    "command %s %s conflicted on %s (attempt %d), retrying",
                    ctx.command_type, printable(ctx.command_id), printable(exc.stream_id), attempt,
                )  # fmt: skip
                ctx.sleep(self.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover


def _retryable_here(ctx: CommandContext, exc: ConcurrencyError) -> bool:
    """Whether running the command again can succeed without a new transaction."""
    if isinstance(exc, StreamAlreadyExists):
        return False  # the stream will still exist
    if ctx.owns_transaction:
        return True
    return not isinstance(exc, AppendOrderConflict | TransactionConflict)


@attrs.frozen
class RetryOnUnavailable:
    """Re-runs a command after :class:`~cqrs.errors.DatabaseUnavailable`, when that is safe.

    Safe means the bus owns the transaction and either it certainly did not
    commit (the connection was refused or lost before COMMIT), or COMMIT was
    lost (:class:`~cqrs.errors.CommitOutcomeUnknown`) and the command has a
    command id: the next run then looks it up in ``processed_commands`` and
    answers the committed outcome instead of running the handler again. A lost
    COMMIT without a command id, or any outage inside the caller's own
    transaction, is raised at once.

    At most ``attempts`` runs, and no wait that would end after ``max_seconds``
    from the first run; before run ``n + 1`` it waits a random time up to
    ``min(max_delay, base_delay * 2 ** (n - 1))`` seconds. The last error is
    re-raised, its cause the driver's error.

    >>> RetryOnUnavailable(attempts=3).delay(1, random.Random(1)) <= 0.1
    True
    """

    attempts: int = attrs.field(default=5, validator=_positive_int)
    base_delay: float = attrs.field(default=0.1, validator=_non_negative)
    max_delay: float = attrs.field(default=2.0, validator=_non_negative)
    max_seconds: float = attrs.field(default=15.0, validator=_non_negative)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before the run after ``attempt`` (1-based)."""
        return backoff_delay(attempt, self.base_delay, self.max_delay, (rng or random).uniform)

    def __call__(self, ctx: CommandContext, call_next: Next) -> CommandOutcome[Any]:
        deadline = self.clock() + self.max_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                return call_next(ctx)
            except DatabaseUnavailable as exc:
                wait = self.delay(attempt)
                if (
                    attempt == self.attempts
                    or not retryable_outage(ctx, exc)
                    or self.clock() + wait > deadline
                ):
                    raise
                log.warning(
                    "command %s %s: database unavailable (attempt %d), retrying in %.2fs: %s",
                    ctx.command_type, printable(ctx.command_id), attempt, wait,
                    printable(exc.detail),
                )  # fmt: skip
                ctx.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def retryable_outage(ctx: CommandContext, exc: DatabaseUnavailable) -> bool:
    """Whether running the command again after ``exc`` cannot apply it twice."""
    if not ctx.owns_transaction:
        return False  # the caller's transaction is gone with its connection
    return ctx.idempotent or not isinstance(exc, CommitOutcomeUnknown)


def default_middleware() -> list[Middleware]:
    """What ``CommandBus()`` uses: logging, retry on outages (5 attempts, 15 s at most),
    retry on conflicts (5 attempts)."""
    return [LoggingMiddleware(), RetryOnUnavailable(), RetryOnConflict()]
