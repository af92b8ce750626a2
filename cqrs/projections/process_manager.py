"""Public: ``ProcessManager``, a projection that reacts to events by dispatching commands.

Its handlers call :meth:`ProcessManager.send`, which runs the command through
the ``CommandBus`` on the runner's batch connection, in a savepoint of the
batch transaction: the command's events, its ``processed_commands`` row and
the manager's checkpoint commit together or not at all. The command id is
derived from the event (``"<manager>:<event id>"``), so a batch that runs
again (after a crash, a rollback or a checkpoint reset) dispatches nothing
twice::

    shipping = ProcessManager("shipping", bus)

    @shipping.on(OrderPaid)
    def _ship(r: RecordedEvent[OrderPaid], ctx: ProjectionContext) -> None:
        shipping.send(ctx, r, CreateShipment(r.event.order_id))

    ProjectionRunner(engine, [shipping]).run_forever()

A failing command fails its batch like any handler error: the projection's
``FailurePolicy`` retries it, then parks the event in ``dead_letters``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

from cqrs.commands.bus import CommandBus
from cqrs.commands.context import CommandOutcome
from cqrs.errors import ProjectionError
from cqrs.events.model import Event, RecordedEvent
from cqrs.events.registry import EventRegistry
from cqrs.projections.declarative import FailurePolicy, Model, Projection, ProjectionContext

# Command ids sent during the current ``apply`` (per thread): one id per command.
_sent: ContextVar[set[str] | None] = ContextVar("cqrs_process_manager_sent", default=None)


class ProcessManager(Projection):
    """A projection whose handlers dispatch commands through ``bus`` exactly once per event.

    Run it in a :class:`~cqrs.projections.runner.ProjectionRunner` like any
    projection (``shards``, ``batch_size``, ``policy`` mean the same); it may
    also write rows of its own ``models``. The event registry defaults to the
    one of the bus's event store.
    """

    def __init__(
        self,
        name: str,
        bus: CommandBus,
        *models: Model,
        shards: int = 1,
        batch_size: int = 100,
        policy: FailurePolicy | None = None,
        registry: EventRegistry | None = None,
    ) -> None:
        super().__init__(
            name, *models, shards=shards, batch_size=batch_size, policy=policy,
            registry=registry or bus.store.codec.registry,
        )  # fmt: skip
        self.bus = bus

    def __repr__(self) -> str:
        return f"ProcessManager({self.name!r})"

    def command_id(self, recorded: RecordedEvent[Any], key: str | None = None) -> str:
        """The id of the command sent for ``recorded``: ``"<name>:<event id>[:<key>]"``.

        >>> manager.command_id(recorded)
        'shipping:0193b0c4-...'
        """
        if key is None:
            return f"{self.name}:{recorded.event_id}"
        if not isinstance(key, str) or not key.strip():
            raise ProjectionError(
                f"process manager {self.name!r}: key must be a non-empty string, got {key!r}"
            )
        return f"{self.name}:{recorded.event_id}:{key}"

    def send(
        self,
        ctx: ProjectionContext,
        recorded: RecordedEvent[Any],
        command: object,
        *,
        key: str | None = None,
    ) -> CommandOutcome[Any]:
        """Dispatch ``command`` because of ``recorded``, in the batch's transaction.

        The command id comes from the event (see :meth:`command_id`); a handler
        that sends several commands for one event gives each its own ``key``.
        The events get the event's correlation id and ``causation_id`` = the
        command id. A repeat (the batch ran before and committed) appends
        nothing and answers the first result with ``replayed=True``::

            outcome = shipping.send(ctx, r, CreateShipment(r.event.order_id))
            refund = shipping.send(ctx, r, RefundPayment(r.event.payment_id), key="refund")
        """
        command_id = self.command_id(recorded, key)
        sent = _sent.get()
        if sent is not None:
            if command_id in sent:
                raise ProjectionError(
                    f"process manager {self.name!r} sent two commands for event "
                    f"{recorded.event_id} with the same id {command_id!r}; the second would be "
                    "taken for a repeat of the first: pass key='...' to send() to tell them apart"
                )
            sent.add(command_id)
        session = ctx.session
        session.connection()  # join the batch transaction: the bus then uses a savepoint
        return self.bus.execute(command, session, command_id=command_id, caused_by=recorded)

    def apply(
        self,
        connection: Connection,
        events: Sequence[RecordedEvent[Event]],
        *,
        session: Session | None = None,
        table_map: Mapping[Table, Table] | None = None,
    ) -> int:
        """Apply ``events`` like :meth:`Projection.apply`, checking that command ids differ."""
        token = _sent.set(set())
        try:
            return super().apply(connection, events, session=session, table_map=table_map)
        finally:
            _sent.reset(token)
