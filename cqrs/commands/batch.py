"""Public: ``BatchCommand`` and the engine of ``CommandBus.execute_batch``: many commands,
one unit of work.

``execute_batch`` runs a list of commands in ONE transaction (or one SAVEPOINT
of the caller's) with a handful of statements whatever their number:

1. one read of ``processed_commands`` for every command id of the batch (a
   command already processed answers its first result, ``replayed``);
2. the handlers run in order; the aggregates they ask for are loaded in
   *waves*: a handler that asks for an aggregate not loaded yet is stopped,
   the streams every stopped handler asked for are read in one statement, and
   the stopped commands run again; commands after the first stopped one run
   only to find what they need, so commands touching the same aggregate are
   still applied in batch order;
3. one ``append_many`` for every touched stream (each event carries the
   metadata of the command that recorded it), all-or-nothing; a stream that
   several commands of the batch changed takes one ``append_many`` per
   command after the first (rounds), since a stream's metadata is per call;
4. one insert of the command ids with their results.

Exactly-once holds through the command ids: the ids are inserted in the same
transaction as the events (``ON CONFLICT DO NOTHING``); an id another
transaction processed meanwhile, or a stream another writer moved, rolls the
batch back and runs it again, where the repeat answers the first result. A
command whose handler raises (a rule of the domain, a missing aggregate) fails
alone, with nothing of it written and no id recorded, as it would alone: its
error takes its place in the answer::

    results = bus.execute_batch(
        [BatchCommand(ReserveStock("o-1"), command_id="stock:o-1"),
         BatchCommand(ReserveStock("o-2"), command_id="stock:o-2")],
        session,
    )
    for r in results:
        if isinstance(r, Exception): ...      # that command's error
        else: r.recorded                       # a CommandOutcome

The batch path skips the bus's per-command middleware (logging, metrics,
retries): it retries conflicts itself, and it is meant for consumers such as
process managers that dispatch many commands at once.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cqrs.aggregates.aggregate import Aggregate
from cqrs.aggregates.snapshots import Snapshot, snapshot_due
from cqrs.backoff import delay as backoff_delay
from cqrs.commands import idempotency, unavailable
from cqrs.commands.context import CommandContext, CommandOutcome
from cqrs.errors import (
    AggregateError,
    AppendOrderConflict,
    AppendRefused,
    CommandError,
    ConcurrencyError,
    InvalidAggregateId,
    InvalidInput,
    StreamAlreadyExists,
    StreamNotFound,
    TransactionConflict,
)
from cqrs.events.model import Event, RecordedEvent
from cqrs.store import validation
from cqrs.store.event_store import EventStore, connection_of
from cqrs.store.expected import StreamAppend
from cqrs.store.rows import EventRow

if TYPE_CHECKING:
    from cqrs.commands.bus import CommandBus

A = TypeVar("A", bound=Aggregate)

# The events of many streams in one statement; pruning as READ_STREAM does (no event
# of a stream is older than its stream row, less an hour of clock steps).
READ_STREAMS = text(
    "SELECT e.event_id, e.stream_id, e.stream_type, e.version, "
    "e.transaction_id::text AS xid, e.global_position, e.event_type, e.schema_version, "
    "e.data::text AS data, e.metadata::text AS metadata, e.recorded_at "
    "FROM unnest(CAST(:sids AS text[]), CAST(:after AS int[])) AS w(sid, after) "
    "JOIN streams s ON s.stream_id = w.sid "
    "JOIN events e ON e.stream_id = s.stream_id AND e.version > w.after "
    "AND e.recorded_at >= s.created_at - interval '1 hour' "
    "ORDER BY e.stream_id, e.version"
)
SNAPSHOTS = text(
    "SELECT stream_id, aggregate_type, version, schema_version, state FROM snapshots "
    "WHERE stream_id = ANY(CAST(:sids AS text[]))"
)
PROCESSED = text(
    "SELECT command_id, command_type, result FROM processed_commands "
    "WHERE command_id = ANY(CAST(:ids AS text[]))"
)
CLAIM_ALL = text(
    "INSERT INTO processed_commands (command_id, command_type, result) "
    "SELECT i, t, CAST(r AS jsonb) FROM unnest(CAST(:ids AS text[]), CAST(:types AS text[]), "
    "CAST(:results AS text[])) AS c(i, t, r) "
    "ON CONFLICT (command_id) DO NOTHING RETURNING command_id"
)


@attrs.frozen
class BatchCommand:
    """One command of :meth:`CommandBus.execute_batch <cqrs.commands.CommandBus.execute_batch>`,
    with the options :meth:`~cqrs.commands.CommandBus.execute` takes.

    >>> BatchCommand("a command", command_id="shipping:1").command_id
    'shipping:1'
    """

    command: object
    command_id: str | None = None
    correlation_id: str | None = None
    caused_by: RecordedEvent[Event] | None = None


class _NeedLoad(BaseException):
    """A handler asked for an aggregate not loaded yet: stop it, load, run it again.

    A ``BaseException`` so that a handler's ``except Exception`` does not swallow it.
    """


class _ClaimTaken(Exception):
    """A command id of the batch was processed by another transaction meanwhile."""


@attrs.define
class _Known:
    """What the batch knows of one stream: its aggregate (``None``: no stream)."""

    aggregate: Aggregate | None
    # the pending events by command, in order: (that command's metadata, how many)
    segments: list[tuple[dict[str, str], int]] = attrs.Factory(list)


class _Batch:
    """The state of one attempt: streams known, loads wanted, per-event metadata."""

    def __init__(self, bus: CommandBus, conn: Connection) -> None:
        self.bus = bus
        self.conn = conn
        self.known: dict[tuple[type[Aggregate], str], _Known] = {}
        self.wanted: set[tuple[type[Aggregate], str]] = set()

    def load(self) -> None:
        """Read every wanted stream: the snapshots of the classes that keep them in one
        statement, then the events (after each snapshot) of all the streams in another."""
        wanted, self.wanted = self.wanted, set()
        store = self.bus.store
        if not isinstance(store, EventStore):
            for cls, id in wanted:
                self.known[(cls, id)] = _Known(self._load_one(cls, id))
            return
        streams = {cls.stream_id_for(id): (cls, id) for cls, id in wanted}
        start: dict[str, Aggregate] = {}
        snapshotted = [sid for sid, (cls, _) in streams.items() if cls.snapshot_every is not None]
        if snapshotted:
            for row in self.conn.execute(SNAPSHOTS, {"sids": snapshotted}):
                cls, id = streams[row[0]]
                try:
                    start[row[0]] = self.bus.snapshots.restore(cls, id, Snapshot(*row))
                except Exception:  # unreadable: the single path warns and replays it all
                    restored = self.bus.snapshots.load(self.conn, cls, id)
                    if restored is not None:  # pragma: no cover - written meanwhile
                        start[row[0]] = restored
        sids = list(streams)
        after = [start[sid].version if sid in start else 0 for sid in sids]
        found: dict[str, list[Event]] = {}
        for row in self.conn.execute(READ_STREAMS, {"sids": sids, "after": after}):
            recorded = store.decode(EventRow._make(row))
            found.setdefault(recorded.stream_id, []).append(recorded.event)
        for stream_id, (cls, id) in streams.items():
            events = found.get(stream_id)
            aggregate = start.get(stream_id)
            if aggregate is None and events is not None:
                aggregate = cls(id)
            if aggregate is not None and events:
                aggregate.replay(events)
            self.known[(cls, id)] = _Known(aggregate)

    def _load_one(self, cls: type[Aggregate], id: str) -> Aggregate | None:
        aggregate = None
        if cls.snapshot_every is not None:
            aggregate = self.bus.snapshots.load(self.conn, cls, id)
        if aggregate is None:
            aggregate = cls(id)
        try:
            recorded = self.bus.store.read_stream(
                self.conn, cls.stream_id_for(id), from_version=aggregate.version + 1
            )
        except StreamNotFound:
            return None
        aggregate.replay(r.event for r in recorded)
        return aggregate


def _private_copy(aggregate: A) -> A:
    """A copy of ``aggregate`` a handler may change freely: its state deep-copied, its
    pending events (immutable) in a list of its own, not copied one by one (copying
    them made N commands on one aggregate cost N squared)."""
    clone = copy.copy(aggregate)
    state = clone.__dict__
    for name, value in state.items():
        state[name] = list(value) if name == "_pending" else copy.deepcopy(value)
    return clone


class BatchRepository:
    """The repository a handler gets from a batch's unit of work: same calls as
    :class:`~cqrs.aggregates.Repository` (``get``, ``get_or_none``, ``create``),
    answering private copies so a failing command leaves no trace."""

    def __init__(self, uow: BatchUnitOfWork, aggregate: type[Aggregate]) -> None:
        if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
            raise AggregateError(f"Repository takes an Aggregate subclass, got {aggregate!r}")
        self.uow = uow
        self.aggregate = aggregate

    def _known(self, id: str) -> _Known:
        key = (self.aggregate, id)
        known = self.uow.batch.known.get(key)
        if known is None:
            self.uow.batch.wanted.add(key)
            raise _NeedLoad(key)
        return known

    def get_or_none(self, id: str) -> Any:
        """The aggregate ``id``, or ``None`` when it has no stream."""
        if not isinstance(id, str):
            raise InvalidAggregateId(self.aggregate.__qualname__, id, "is not a str")
        mine = self.uow.local.get((self.aggregate, id))
        if mine is not None:
            return mine
        known = self._known(id)
        if known.aggregate is None:
            return None
        copied = _private_copy(known.aggregate)
        self.uow.local[(self.aggregate, id)] = copied
        self.uow.base[(self.aggregate, id)] = len(known.aggregate.pending_events)
        return copied

    def get(self, id: str) -> Any:
        """The aggregate ``id``; raises :class:`~cqrs.errors.StreamNotFound`."""
        found = self.get_or_none(id)
        if found is None:
            raise StreamNotFound(self.aggregate.stream_id_for(id))
        return found

    def create(self, id: str) -> Any:
        """A new aggregate ``id``; :class:`~cqrs.errors.StreamAlreadyExists` when it exists."""
        cls = self.aggregate
        store = self.uow.batch.bus.store
        validation.check_aggregate_id(cls.__qualname__, id, store.settings)
        if (cls, id) in self.uow.local:
            raise AggregateError(
                f"{cls.__qualname__} {id!r} was already loaded or created in this "
                "unit of work; use get() for an existing aggregate"
            )
        store.check_stream_id(cls.stream_id_for(id))
        known = self._known(id)
        if known.aggregate is not None:
            raise StreamAlreadyExists(
                cls.stream_id_for(id), known.aggregate.version, cls.__qualname__
            )
        created = cls(id)
        self.uow.local[(cls, id)] = created
        self.uow.base[(cls, id)] = 0
        return created


class BatchUnitOfWork:
    """What a handler gets in a batch: ``repository(cls)``, as from a :class:`UnitOfWork`."""

    def __init__(self, batch: _Batch, session: Session) -> None:
        self.batch = batch
        self.session = session
        self.local: dict[tuple[type[Aggregate], str], Aggregate] = {}
        self.base: dict[tuple[type[Aggregate], str], int] = {}  # pending events before
        self._repositories: dict[type[Aggregate], BatchRepository] = {}

    def repository(self, aggregate: type[A]) -> Any:
        """The repository for ``aggregate`` in this command of the batch."""
        repo = self._repositories.get(aggregate)
        if repo is None:
            repo = self._repositories[aggregate] = BatchRepository(self, aggregate)
        return repo

    def keep(self, metadata: dict[str, str]) -> list[tuple[str, int]]:
        """Make this command's aggregates the batch's; answers (stream, new events) pairs."""
        segments = []
        for key, aggregate in self.local.items():
            new = len(aggregate.pending_events) - self.base[key]
            if new <= 0:
                continue
            known = self.batch.known.get(key)
            if known is None:
                known = self.batch.known[key] = _Known(None)
            known.aggregate = aggregate
            known.segments.append((metadata, new))
            segments.append((aggregate.stream_id, new))
        return segments


def _fresh_transaction_only(exc: ConcurrencyError) -> bool:
    if isinstance(exc, AppendOrderConflict | TransactionConflict):
        return True
    if isinstance(exc, AppendRefused):
        return exc.torn or any(
            isinstance(r, AppendOrderConflict | TransactionConflict) for r in exc.refusals.values()
        )
    return False


def execute_batch(
    bus: CommandBus,
    items: Sequence[BatchCommand | object],
    session: Session,
    *,
    attempts: int = 5,
    sleep: Callable[[float], None] | None = None,
) -> list[CommandOutcome[Any] | Exception]:
    """The body of :meth:`CommandBus.execute_batch`."""
    contexts = _contexts(bus, items, session)
    if not contexts:
        return []
    owns = not session.in_transaction()
    wait = sleep or contexts[0].sleep
    for attempt in range(1, attempts + 1):
        committing: list[bool] = []
        try:
            transaction = session.begin_nested() if session.in_transaction() else session.begin()
            with transaction:
                results = _attempt(bus, contexts, session, attempt)
                session.flush()
                committing.append(True)
            return results
        except _ClaimTaken:
            pass  # the next attempt finds those ids processed
        except ConcurrencyError as exc:
            if attempt == attempts or (not owns and _fresh_transaction_only(exc)):
                raise
        except DBAPIError as exc:
            error = unavailable.unavailable(exc, committing=bool(committing) and owns)
            if error is None:
                raise
            raise error from exc
        wait(backoff_delay(attempt, 0.005, 0.25, random.uniform))
    raise ConcurrencyError("(a batch of commands)", "its ids unclaimed", None)


def _contexts(
    bus: CommandBus, items: Sequence[BatchCommand | object], session: Session
) -> list[CommandContext]:
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise InvalidInput(f"execute_batch takes a list of commands, got {type(items).__name__}")
    contexts = []
    seen: set[str] = set()
    for item in items:
        one = item if isinstance(item, BatchCommand) else BatchCommand(item)
        command = one.command
        bus.handler_for(type(command))  # fail before opening a transaction
        given = one.command_id
        if given is None:
            given = getattr(command, "command_id", None)
        if given is not None:
            validation.check_command_id(given, bus.store.settings)
            if given in seen:
                raise InvalidInput(
                    f"command id {given!r} is given twice in one batch; the second would be "
                    "taken for a repeat of the first: give every command its own id"
                )
            seen.add(given)
        cid = given or str(_new_id())
        correlation = one.correlation_id
        if correlation is None and one.caused_by is not None:
            correlation = one.caused_by.correlation_id or str(one.caused_by.event_id)
        contexts.append(
            CommandContext(
                command=command, session=session, command_id=cid,
                correlation_id=correlation or cid, causation_id=cid,
                idempotent=given is not None, owns_transaction=not session.in_transaction(),
            )
        )  # fmt: skip
    return contexts


def _new_id() -> object:
    from cqrs.events.ids import uuid7

    return uuid7()


def _attempt(
    bus: CommandBus, contexts: list[CommandContext], session: Session, attempt: int
) -> list[CommandOutcome[Any] | Exception]:
    conn = connection_of(session)
    results: list[CommandOutcome[Any] | Exception | None] = [None] * len(contexts)
    ids = [c.command_id for c in contexts if c.idempotent]
    stored = {}
    if ids:
        stored = {cid: (ctype, r) for cid, ctype, r in conn.execute(PROCESSED, {"ids": ids})}
    pending = []
    for i, ctx in enumerate(contexts):
        ctx.attempt = attempt
        first = stored.get(ctx.command_id) if ctx.idempotent else None
        if first is None:
            pending.append(i)
        elif first[0] != ctx.command_type:
            results[i] = InvalidInput(
                f"command id {ctx.command_id!r} was already used by a {first[0]} command, not "
                f"{ctx.command_type}; give every command its own id"
            )
        else:
            result = bus._structure_result(type(ctx.command), first[1])
            results[i] = CommandOutcome(result, (), ctx.command_id, True, attempt)
    batch = _Batch(bus, conn)
    kept: dict[int, tuple[Any, str | None, list[tuple[str, int]]]] = {}
    while pending:
        again = []
        blocked = False
        for i in pending:
            ctx = contexts[i]
            uow = BatchUnitOfWork(batch, session)
            try:
                handler: Callable[[Any, Any], Any] = bus.handler_for(type(ctx.command))
                result = handler(ctx.command, uow)
                payload = _encoded(bus, ctx, result)
            except _NeedLoad:
                blocked = True
                again.append(i)
                continue
            except DBAPIError:
                raise  # the transaction is broken: the whole batch rolls back
            except Exception as exc:
                if blocked:
                    again.append(i)  # it ran on aggregates an earlier command may change
                else:
                    results[i] = exc
                continue
            if blocked:
                again.append(i)
                continue
            kept[i] = (result, payload, uow.keep(ctx.event_metadata))
        if again and not batch.wanted:
            raise CommandError("a batch stopped without an aggregate to load")  # pragma: no cover
        batch.load()
        pending = again
    recorded = _append(bus, batch, conn)
    by_command: dict[int, list[RecordedEvent[Event]]] = {}
    for i in sorted(kept):
        for stream_id, n in kept[i][2]:
            taken, recorded[stream_id] = recorded[stream_id][:n], recorded[stream_id][n:]
            by_command.setdefault(i, []).extend(taken)
    everything = [r for i in sorted(by_command) for r in by_command[i]]
    if everything:
        for projection in bus.inline_projections:
            projection.apply_inline(session, everything)
    claims = [i for i in sorted(kept) if contexts[i].idempotent]
    if claims:
        rows = conn.execute(
            CLAIM_ALL,
            {
                "ids": [contexts[i].command_id for i in claims],
                "types": [contexts[i].command_type for i in claims],
                "results": [kept[i][1] for i in claims],
            },
        ).all()
        if len(rows) != len(claims):
            raise _ClaimTaken()
    for i, (result, _, _) in kept.items():
        events = tuple(by_command.get(i, ()))
        results[i] = CommandOutcome(result, events, contexts[i].command_id, False, attempt)
    return [r for r in results if r is not None]


def _encoded(bus: CommandBus, ctx: CommandContext, result: Any) -> str | None:
    """The result as the JSON text ``processed_commands`` keeps (``None`` for none)."""
    if not ctx.idempotent:
        return None
    return idempotency.encode_result(
        ctx.command_id, result, bus.converter, bus.store.settings.max_nesting_depth
    )


def _append(
    bus: CommandBus, batch: _Batch, conn: Connection
) -> dict[str, list[RecordedEvent[Event]]]:
    """Append what the kept commands recorded: one ``append_many`` per round, round ``k``
    holding the ``k``-th command's events of every stream (one round, mostly)."""
    rounds: list[list[StreamAppend]] = []
    touched = []
    for known in batch.known.values():
        aggregate = known.aggregate
        if aggregate is None or not aggregate.pending_events:
            continue
        touched.append(aggregate)
        pending = aggregate.pending_events
        at = 0
        for k, (metadata, n) in enumerate(known.segments):
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(
                StreamAppend(
                    aggregate.stream_id, list(pending[at : at + n]),
                    expected_version=aggregate.loaded_version + at,
                    stream_type=aggregate.aggregate_type, metadata=metadata,
                )
            )  # fmt: skip
            at += n
    recorded: dict[str, list[RecordedEvent[Event]]] = {}
    for appends in rounds:
        for result in bus.store.append_many(conn, appends):
            recorded.setdefault(result.stream_id, []).extend(result.recorded)
    for aggregate in touched:
        before = aggregate.loaded_version
        aggregate.mark_saved()
        if snapshot_due(type(aggregate), before, aggregate.version):
            bus.snapshots.save(conn, aggregate)
    return recorded
