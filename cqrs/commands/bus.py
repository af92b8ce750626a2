"""Public: ``CommandBus``, one handler per command type, run in one transaction.

Commands are plain attrs classes. A command id (a ``command_id`` attribute,
or ``command_id=`` on dispatch) makes a command idempotent: a repeat returns
the first result and appends nothing. Every appended event carries
``command_id``, ``correlation_id`` and ``causation_id`` in its metadata::

    bus = CommandBus()

    @bus.handles(PlaceOrder)
    def place_order(cmd: PlaceOrder, uow: UnitOfWork) -> str:
        order = uow.repository(Order).create(cmd.order_id)
        order.place(cmd.customer_id, cmd.total)
        return order.id

    with Session(engine) as session:
        bus.dispatch(PlaceOrder("o-1", "c-1", Decimal(5)), session)   # -> 'o-1'

``dispatch`` begins and commits its own transaction when the session has
none, and runs inside a SAVEPOINT of the caller's transaction when one is
open (the caller commits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, get_type_hints

import attrs
import cattrs
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cqrs.aggregates.repository import default_snapshots, default_store
from cqrs.aggregates.snapshots import SnapshotStore
from cqrs.binds import require_sync
from cqrs.commands import batch, idempotency, unavailable
from cqrs.commands.batch import BatchCommand
from cqrs.commands.context import CommandContext, CommandOutcome
from cqrs.commands.inline import InlineProjection
from cqrs.commands.middleware import Middleware, Next, default_middleware
from cqrs.commands.unit_of_work import UnitOfWork
from cqrs.errors import CommandError, CommitOutcomeUnknown, HandlerNotFound, InvalidInput
from cqrs.events.codec import make_converter
from cqrs.events.ids import uuid7
from cqrs.events.model import Event, RecordedEvent
from cqrs.store import validation
from cqrs.store.interface import EventStoreProtocol
from cqrs.store.tables import events

C = TypeVar("C")
R = TypeVar("R")
Handler = Callable[[C, UnitOfWork], R]


class CommandBus:
    """Routes commands to handlers through middleware, one transaction per run.

    ``middleware`` defaults to :func:`~cqrs.commands.middleware.default_middleware`
    (logging, retry on conflicts); pass your own list to change it.
    ``inline_projections`` run on the appended events in the same transaction.
    """

    def __init__(
        self,
        *,
        store: EventStoreProtocol | None = None,
        snapshots: SnapshotStore | None = None,
        inline_projections: Sequence[InlineProjection] = (),
        middleware: Sequence[Middleware] | None = None,
        converter: cattrs.Converter | None = None,
    ) -> None:
        self.store = store or default_store()
        self.snapshots = snapshots or default_snapshots()
        self.inline_projections: list[InlineProjection] = list(inline_projections)
        self.middleware: list[Middleware] = (
            default_middleware() if middleware is None else list(middleware)
        )
        self.converter = converter or make_converter()
        self._handlers: dict[type, Callable[[Any, UnitOfWork], Any]] = {}
        self._result_types: dict[type, Any] = {}

    # -- registration --------------------------------------------------------

    def handles(self, command_type: type[C]) -> Callable[[Handler[C, R]], Handler[C, R]]:
        """Decorate the handler of ``command_type``: ``fn(command, uow) -> result``."""

        def decorate(fn: Handler[C, R]) -> Handler[C, R]:
            self.register(command_type, fn)
            return fn

        return decorate

    def register(self, command_type: type[C], handler: Handler[C, R]) -> None:
        """Register ``handler`` for ``command_type`` (one handler per type)."""
        if not isinstance(command_type, type):
            raise CommandError(f"handles() takes a command class, got {command_type!r}")
        known = self._handlers.get(command_type)
        if known is not None and known is not handler:
            raise CommandError(
                f"{command_type.__qualname__} already has a handler "
                f"({getattr(known, '__qualname__', known)!r}); a command type has exactly one"
            )
        self._handlers[command_type] = handler

    def add_inline_projection(self, projection: InlineProjection) -> None:
        """Run ``projection`` on every command's events, in the command's transaction."""
        self.inline_projections.append(projection)

    def handler_for(self, command_type: type) -> Callable[[Any, UnitOfWork], Any]:
        """The handler of ``command_type`` (or of its nearest registered base class)."""
        for klass in command_type.__mro__:
            handler = self._handlers.get(klass)
            if handler is not None:
                return handler
        raise HandlerNotFound(f"command {command_type.__qualname__}")

    # -- dispatch ------------------------------------------------------------

    def dispatch(
        self,
        command: object,
        session: Session,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
        caused_by: RecordedEvent[Event] | None = None,
    ) -> Any:
        """Handle ``command`` and return the handler's result (see :meth:`execute`)."""
        return self.execute(
            command, session, command_id=command_id, correlation_id=correlation_id,
            caused_by=caused_by,
        ).result  # fmt: skip

    def execute(
        self,
        command: object,
        session: Session,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
        caused_by: RecordedEvent[Event] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> CommandOutcome[Any]:
        """Handle ``command``; answer the result together with the appended events.

        ``command_id`` (or the command's own ``command_id`` attribute) makes
        the command idempotent. ``correlation_id`` defaults to the one of
        ``caused_by`` (the event that led to this command), else to the
        command id. Events get ``causation_id`` = the command id.
        """
        if not isinstance(session, Session):
            raise InvalidInput(
                f"dispatch takes a sqlalchemy.orm.Session, got {type(session).__name__}; "
                "with an AsyncSession use cqrs.commands.asyncio.dispatch_async"
            )
        require_sync(session, "CommandBus.dispatch", "use cqrs.commands.asyncio.dispatch_async")
        self.handler_for(type(command))  # fail before opening a transaction
        given = command_id if command_id is not None else getattr(command, "command_id", None)
        if given is not None:
            validation.check_command_id(given, self.store.settings)
        cid = given or str(uuid7())
        if correlation_id is None and caused_by is not None:
            correlation_id = caused_by.correlation_id or str(caused_by.event_id)
        ctx = CommandContext(
            command=command,
            session=session,
            command_id=cid,
            correlation_id=correlation_id or cid,
            causation_id=cid,
            idempotent=given is not None,
            owns_transaction=not session.in_transaction(),
        )
        if sleep is not None:
            ctx.sleep = sleep
        call: Next = self._run_once
        for middleware in reversed(self.middleware):
            call = _chain(middleware, call)
        return call(ctx)

    def execute_batch(
        self,
        commands: Sequence[BatchCommand | object],
        session: Session,
        *,
        attempts: int = 5,
        sleep: Callable[[float], None] | None = None,
    ) -> list[CommandOutcome[Any] | Exception]:
        """Run ``commands`` as ONE unit of work; answer an outcome or an error for each.

        Each item is a command or a :class:`~cqrs.commands.batch.BatchCommand`
        (a command with the ``command_id``, ``correlation_id`` and ``caused_by``
        of :meth:`execute`). A handful of statements serve the whole batch: one
        read of the command ids, the aggregates loaded in waves (one read per
        wave), one ``append_many``, one insert of the command ids. Commands are
        applied in order (several may change the same aggregate); one whose
        handler raises fails alone, its error in its place of the answer, nothing
        of it written. A conflict (a stream moved, a command id processed
        meanwhile) rolls the batch back and runs it again, at most ``attempts``
        times; inside the caller's transaction a conflict that needs a fresh
        transaction (:class:`~cqrs.errors.AppendOrderConflict`) is raised for the
        caller to rerun. Middleware does not run (see ``cqrs.commands.batch``)::

            results = bus.execute_batch(
                [BatchCommand(ReserveStock("o-1"), command_id="stock:o-1"), ShipOrder("o-2")],
                session,
            )
        """
        if not isinstance(session, Session):
            raise InvalidInput(
                f"execute_batch takes a sqlalchemy.orm.Session, got {type(session).__name__}"
            )
        require_sync(session, "CommandBus.execute_batch", "run it in AsyncSession.run_sync")
        return batch.execute_batch(self, commands, session, attempts=attempts, sleep=sleep)

    def _run_once(self, ctx: CommandContext) -> CommandOutcome[Any]:
        """One transactional run: claim the id, handle, append, project, commit.

        A lost or unreachable database raises :class:`~cqrs.errors.DatabaseUnavailable`
        (the driver's error as ``__cause__``); a connection lost during COMMIT raises
        :class:`~cqrs.errors.CommitOutcomeUnknown` and leaves the outcome it would
        have returned in ``ctx.unresolved`` for the next run to check.
        """
        ctx.attempt += 1
        committing: list[CommandOutcome[Any]] = []
        try:
            return self._transaction(ctx, committing)
        except DBAPIError as exc:
            error = unavailable.unavailable(exc, committing=bool(committing))
            if error is None:
                raise
            if isinstance(error, CommitOutcomeUnknown):
                if ctx.owns_transaction:
                    ctx.unresolved = committing[0]
                else:  # a SAVEPOINT's release, not a COMMIT: the caller's to judge
                    error = unavailable.unavailable(exc, committing=False) or error
            raise error from exc

    def _transaction(
        self, ctx: CommandContext, committing: list[CommandOutcome[Any]]
    ) -> CommandOutcome[Any]:
        session = ctx.session
        handler = self.handler_for(type(ctx.command))
        transaction = session.begin_nested() if session.in_transaction() else session.begin()
        with transaction:
            conn = session.connection()
            if ctx.idempotent:
                first = idempotency.claim(conn, ctx.command_id, ctx.command_type)
                if not idempotency.is_first_run(first):
                    return self._already_processed(ctx, first)
            ctx.unresolved = None  # the lost COMMIT, if any, did not go through
            uow = UnitOfWork(
                session,
                store=self.store,
                snapshots=self.snapshots,
                inline_projections=self.inline_projections,
                metadata=ctx.event_metadata,
            )
            result = handler(ctx.command, uow)
            uow.flush()
            if ctx.idempotent:
                idempotency.store_result(
                    conn, ctx.command_id, result, self.converter,
                    self.store.settings.max_nesting_depth,
                )  # fmt: skip
            session.flush()  # only COMMIT itself is left: a failure from here is "unknown"
            outcome = CommandOutcome(result, uow.recorded, ctx.command_id, False, ctx.attempt)
            committing.append(outcome)
        return outcome

    def _already_processed(self, ctx: CommandContext, stored: object) -> CommandOutcome[Any]:
        """The answer for a command id found in ``processed_commands``.

        After a lost COMMIT (``ctx.unresolved``) whose events are in the log, that
        run did commit: answer its outcome. Otherwise it is a repeat: the first
        run's stored result, ``replayed``.
        """
        lost, ctx.unresolved = ctx.unresolved, None
        if lost is not None and self._in_log(ctx.session, lost):
            return attrs.evolve(lost, attempts=ctx.attempt)
        result = self._structure_result(type(ctx.command), stored)
        return CommandOutcome(result, (), ctx.command_id, True, ctx.attempt)

    @staticmethod
    def _in_log(session: Session, outcome: CommandOutcome[Any]) -> bool:
        """Whether ``outcome``'s last event is in the log (it committed); true without events."""
        if not outcome.recorded:
            return True
        last = outcome.recorded[-1]
        found = session.execute(
            select(events.c.event_id).where(
                events.c.stream_id == last.stream_id,
                events.c.version == last.version,
                events.c.recorded_at == last.recorded_at,
            )
        ).scalar()
        return found == last.event_id

    def _structure_result(self, command_type: type, stored: object) -> Any:
        if stored is None:
            return None
        if command_type not in self._result_types:
            handler = self.handler_for(command_type)
            try:
                hint = get_type_hints(handler).get("return", Any)
            except Exception:
                hint = Any
            self._result_types[command_type] = hint
        return self.converter.structure(stored, self._result_types[command_type])


def _chain(middleware: Middleware, call_next: Next) -> Next:
    def call(ctx: CommandContext) -> CommandOutcome[Any]:
        return middleware(ctx, call_next)

    return call
