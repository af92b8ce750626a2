"""Public: read models: declarative projections, the runner, status, rebuilds.

Definitions (``Projection``, ``E``) are apart from how they run
(``ProjectionRunner``, ``rebuild``, dead letters); a ``ProcessManager`` is a
projection that dispatches commands::

    from cqrs.projections import E, Projection, ProjectionRunner
"""

from cqrs.projections.asyncio import wait_for_async
from cqrs.projections.dead_letters import (
    DeadLetter,
    list_dead_letters,
    retry_dead_letters,
    skip_dead_letters,
)
from cqrs.projections.declarative import FailurePolicy, Projection, ProjectionContext
from cqrs.projections.expr import E
from cqrs.projections.notify import Notifier, install_notify
from cqrs.projections.process_manager import ProcessManager
from cqrs.projections.rebuild import RebuildResult, rebuild
from cqrs.projections.runner import ProjectionRunner
from cqrs.projections.status import (
    HorizonHolder,
    ShardStatus,
    horizon_holder,
    projection_status,
    wait_for,
)

__all__ = [
    "DeadLetter",
    "E",
    "FailurePolicy",
    "HorizonHolder",
    "Notifier",
    "ProcessManager",
    "Projection",
    "ProjectionContext",
    "ProjectionRunner",
    "RebuildResult",
    "ShardStatus",
    "horizon_holder",
    "install_notify",
    "list_dead_letters",
    "projection_status",
    "rebuild",
    "retry_dead_letters",
    "skip_dead_letters",
    "wait_for",
    "wait_for_async",
]
