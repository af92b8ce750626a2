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

:meth:`ProcessManager.enqueue` is the batched form of ``send``: the commands
queued while the runner applies a batch run together at the end of it, through
:meth:`CommandBus.execute_batch <cqrs.commands.CommandBus.execute_batch>`, in
the same transaction as the checkpoint (a few statements for the whole batch
instead of a few per command; same command ids, so exactly-once holds)::

    @shipping.on(OrderPaid)
    def _ship(r: RecordedEvent[OrderPaid], ctx: ProjectionContext) -> None:
        shipping.enqueue(ctx, r, CreateShipment(r.event.order_id))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

from cqrs.commands.batch import BatchCommand
from cqrs.commands.bus import CommandBus
from cqrs.commands.context import CommandOutcome
from cqrs.errors import ProjectionError
from cqrs.events.model import Event, RecordedEvent
from cqrs.events.registry import EventRegistry
from cqrs.projections.declarative import FailurePolicy, Model, Projection, ProjectionContext

# Command ids sent during the current ``apply`` (per thread): one id per command.
_sent: ContextVar[set[str] | None] = ContextVar("cqrs_process_manager_sent", default=None)
# Commands queued by ``enqueue`` during the current ``apply`` (per thread).
_queued: ContextVar[list[BatchCommand] | None] = ContextVar(
    "cqrs_process_manager_queued", default=None
)


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
            registry=registry or bus.store.codec.registry, appends=True,
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
        command_id = self._claim_id(recorded, key)
        session = ctx.session
        session.connection()  # join the batch transaction: the bus then uses a savepoint
        return self.bus.execute(command, session, command_id=command_id, caused_by=recorded)

    def enqueue(
        self,
        ctx: ProjectionContext,
        recorded: RecordedEvent[Any],
        command: object,
        *,
        key: str | None = None,
    ) -> None:
        """Queue ``command`` because of ``recorded``; it runs at the end of the batch.

        Like :meth:`send` (same command id, correlation and causation), but the
        commands queued while the runner applies one batch run together, in
        order, through :meth:`CommandBus.execute_batch
        <cqrs.commands.CommandBus.execute_batch>` once the batch's events are
        handled, in the batch's transaction: they commit with the checkpoint or
        not at all. A handler therefore does not see its own commands' effects
        while the batch runs. A command that fails fails the batch like an error
        of ``send`` (the failure policy retries it, then parks its event)::

            shipping.enqueue(ctx, r, CreateShipment(r.event.order_id))
        """
        queued = _queued.get()
        if queued is None:
            raise ProjectionError(
                f"process manager {self.name!r}: enqueue() works while the manager applies "
                "events (in its handlers); call send() elsewhere"
            )
        command_id = self._claim_id(recorded, key)
        queued.append(BatchCommand(command, command_id=command_id, caused_by=recorded))

    def _claim_id(self, recorded: RecordedEvent[Any], key: str | None) -> str:
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
        return command_id

    def apply(
        self,
        connection: Connection,
        events: Sequence[RecordedEvent[Event]],
        *,
        session: Session | None = None,
        table_map: Mapping[Table, Table] | None = None,
    ) -> int:
        """Apply ``events`` like :meth:`Projection.apply`, checking that command ids differ;
        then run the commands the handlers queued (:meth:`enqueue`) as one batch."""
        queued: list[BatchCommand] = []
        token, queue_token = _sent.set(set()), _queued.set(queued)
        try:
            statements = super().apply(connection, events, session=session, table_map=table_map)
        finally:
            _sent.reset(token)
            _queued.reset(queue_token)
        if queued:
            self._run_queued(connection, queued, session)
        return statements

    def _run_queued(
        self, connection: Connection, queued: list[BatchCommand], session: Session | None
    ) -> None:
        """Run the queued commands as one batch in the batch's transaction; raise the
        first failure (it fails the runner batch, as a failing ``send`` does)."""
        # "rollback_only": closing the session never rolls back the batch's work
        own = session or Session(bind=connection, join_transaction_mode="rollback_only")
        try:
            own.connection()  # join the batch transaction: the bus then uses a savepoint
            for result in self.bus.execute_batch(queued, own):
                if isinstance(result, Exception):
                    raise result
        finally:
            if session is None:
                own.close()
