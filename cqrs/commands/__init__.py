"""Public: the command bus, its middleware and the unit of work."""

from cqrs.commands.batch import BatchCommand
from cqrs.commands.bus import CommandBus
from cqrs.commands.context import CommandContext, CommandOutcome
from cqrs.commands.inline import InlineProjection
from cqrs.commands.middleware import (
    CommandMetrics,
    LoggingMiddleware,
    MetricsHook,
    Middleware,
    RetryOnConflict,
    RetryOnUnavailable,
    default_middleware,
)
from cqrs.commands.transaction import run_in_transaction
from cqrs.commands.unit_of_work import UnitOfWork

__all__ = [
    "BatchCommand",
    "CommandBus",
    "CommandContext",
    "CommandMetrics",
    "CommandOutcome",
    "InlineProjection",
    "LoggingMiddleware",
    "MetricsHook",
    "Middleware",
    "RetryOnConflict",
    "RetryOnUnavailable",
    "UnitOfWork",
    "default_middleware",
    "run_in_transaction",
]
