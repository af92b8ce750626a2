"""Public: command bus middleware: logging, a metrics hook, retry on conflicts.

A middleware is any callable ``(ctx, call_next) -> CommandOutcome``. The bus
chains them in order around one *transactional run* of the handler, so a
retry middleware re-runs the whole command (reload, handle, append) in a
fresh transaction::

    >>> from cqrs.commands import CommandBus
    >>> bus = CommandBus(middleware=[
    ...     LoggingMiddleware(), MetricsHook(statsd_observe), RetryOnConflict(attempts=8),
    ... ])
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import attrs

from cqrs.commands.context import CommandContext, CommandOutcome
from cqrs.errors import (
    AppendOrderConflict,
    ConcurrencyError,
    ConfigurationError,
    TransactionConflict,
)

Next = Callable[[CommandContext], CommandOutcome[Any]]
Middleware = Callable[[CommandContext, Next], CommandOutcome[Any]]

log = logging.getLogger("cqrs.commands")


@attrs.frozen
class LoggingMiddleware:
    """Logs each command: DEBUG when handled, WARNING (with the error) when it fails."""

    logger: logging.Logger = log

    def __call__(self, ctx: CommandContext, call_next: Next) -> CommandOutcome[Any]:
        started = time.perf_counter()
        try:
            outcome = call_next(ctx)
        except Exception as exc:
            self.logger.warning(
                "command %s %s failed after %d attempt(s): %s: %s",
                ctx.command_type, ctx.command_id, ctx.attempt, type(exc).__name__, exc,
            )  # fmt: skip
            raise
        self.logger.debug(
            "command %s %s handled in %.1f ms, %d attempt(s), %d event(s)%s",
            ctx.command_type, ctx.command_id, (time.perf_counter() - started) * 1000,
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
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)

    def __call__(self, ctx: CommandContext, call_next: Next) -> CommandOutcome[Any]:
        for attempt in range(1, self.attempts + 1):
            try:
                return call_next(ctx)
            except ConcurrencyError as exc:
                if attempt == self.attempts or not _retryable_here(ctx, exc):
                    raise
                log.debug(
                    "command %s %s conflicted on %s (attempt %d), retrying",
                    ctx.command_type, ctx.command_id, exc.stream_id, attempt,
                )  # fmt: skip
                ctx.sleep(self.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover


def _retryable_here(ctx: CommandContext, exc: ConcurrencyError) -> bool:
    """Whether running the command again can succeed without a new transaction."""
    if ctx.owns_transaction:
        return True
    return not isinstance(exc, AppendOrderConflict | TransactionConflict)


def default_middleware() -> list[Middleware]:
    """What ``CommandBus()`` uses: logging, then retry on conflicts (5 attempts)."""
    return [LoggingMiddleware(), RetryOnConflict()]
