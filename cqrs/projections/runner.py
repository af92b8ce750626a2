"""Public: ``ProjectionRunner``, which keeps read models up with the log.

It catches up from each (projection, shard) checkpoint, then follows the log
live: woken by the coalesced ``NOTIFY`` hint (see ``install_notify``), and
polling every ``poll_interval`` seconds whatever happens. Each batch is one
transaction (see ``cqrs.projections.batch``). A killed connection or a
restarting database makes it reconnect with backoff; a failing handler goes
through the projection's ``FailurePolicy``::

    runner = ProjectionRunner(engine, [summary])
    runner.run_until_caught_up()          # tests, scripts: up to the head at the call
    stop = threading.Event()
    runner.run_forever(stop)              # a service; stop.set() ends it after the batch
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from cqrs.backoff import delay as backoff_delay
from cqrs.binds import require_sync
from cqrs.config import Settings, check_notify_channel
from cqrs.errors import (
    AppendOrderConflict,
    AppendRefused,
    DatabaseUnavailable,
    ProjectionError,
    ReadModelTimeout,
    TransactionConflict,
)
from cqrs.errortext import clip, describe
from cqrs.events.model import START, Position
from cqrs.projections import sql
from cqrs.projections.batch import (
    CheckpointMoved,
    Outcome,
    Target,
    next_scan,
    run_batch,
)
from cqrs.projections.declarative import Projection
from cqrs.projections.leases import LeaseKeeper
from cqrs.projections.notify import Listener
from cqrs.projections.status import timed_out
from cqrs.store import partitions
from cqrs.store.event_store import EventStore

log = logging.getLogger("cqrs.projections")
UPKEEP_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('cqrs.partitions'), 0)")
CHECKPOINTS = text(
    "SELECT projection, shard, transaction_id::text, global_position FROM checkpoints"
)


def is_transient(exc: BaseException) -> bool:
    """Connection trouble (retry forever, park nothing) as opposed to a handler failure.

    The command bus reports it as ``DatabaseUnavailable`` (process managers and the
    inbox dispatch through it).
    """
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


FRESH_RERUNS = 50
"""How many times in a row a batch reruns after conflicts only a fresh transaction resolves
before they count as failures of the projection."""


def needs_fresh_transaction(exc: BaseException) -> bool:
    """A conflict that rerunning the batch in a new transaction resolves (not a failure).

    A process manager's command refused by :class:`~cqrs.errors.AppendOrderConflict`
    (another writer appended to its stream after the batch's transaction took its id)
    or aborted by PostgreSQL (:class:`~cqrs.errors.TransactionConflict`): the rerun
    takes a newer transaction id and succeeds.
    """
    if isinstance(exc, AppendOrderConflict | TransactionConflict):
        return True
    if isinstance(exc, AppendRefused):
        return (
            any(
                isinstance(r, AppendOrderConflict | TransactionConflict)
                for r in exc.refusals.values()
            )
            or exc.torn
        )
    return False


class ProjectionRunner:
    """Runs projections' batches against ``engine``.

    ``store`` decodes events (its registry must know their classes);
    ``owner`` names this runner in shard leases; ``lease_ttl`` is how long a
    dead runner keeps its shards before the others take them; ``on_batch`` is
    called after each committed batch (metrics, tests). At start and every ``upkeep_every``
    seconds ``run_forever`` also creates the ``events`` partitions ``settings``
    asks for ahead of time (``None`` turns that off). ``durable=False`` commits
    batches with ``synchronous_commit = off``: lower latency; a database crash
    may then lose the last batches, read-model rows and checkpoint together, and
    the runner applies them again (effects stay exactly-once). It applies to
    projections that append nothing: a process manager's batches (and those of
    ``Projection(appends=True)``) always commit durably, since events others
    may already have read must not be lost. ``channel`` is
    the wake-up channel to ``LISTEN`` on (default: ``settings.notify_channel``).
    """

    def __init__(
        self,
        engine: Engine,
        projections: Sequence[Projection],
        *,
        store: EventStore | None = None,
        poll_interval: float = 0.5,
        channel: str | None = None,
        listen: bool = True,
        owner: str | None = None,
        lease_ttl: float = 10.0,
        on_batch: Callable[[Target, Outcome], None] | None = None,
        settings: Settings | None = None,
        upkeep_every: float | None = 3600.0,
        durable: bool = True,
    ) -> None:
        require_sync(
            engine,
            "ProjectionRunner",
            "run the runner on a sync engine (create_engine(url)) in a process of its own "
            "(cqrs projections run) or a thread (asyncio.to_thread)",
        )
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ProjectionError(f"projection names must be unique, got {names}")
        self.engine = engine
        self.projections = list(projections)
        registries = {id(p.registry): p.registry for p in projections}
        if store is None and len(registries) > 1:
            raise ProjectionError(
                "these projections use different event registries; pass store=EventStore(...) "
                "whose registry knows every event they handle"
            )
        self.store = store or EventStore(registry=next(iter(registries.values()), None))
        self.poll_interval = poll_interval
        self.listen = listen
        self.owner = owner or f"runner-{uuid.uuid4().hex[:10]}"
        self.leases = LeaseKeeper(engine, self.owner, lease_ttl)
        self.on_batch = on_batch
        self._scans: dict[tuple[str, int], int] = {}  # how far each target reads ahead
        self.durable = durable
        self.settings = settings or Settings()
        self.channel = check_notify_channel(channel or self.settings.notify_channel)
        self.upkeep_every = upkeep_every
        self._upkeep_at: float | None = None  # never yet: the first upkeep() is due
        self._upkeep_said = False
        self.stop = threading.Event()
        self._conn: Connection | None = None
        self._listener: Listener | None = None
        self._reconnects = 0

    # -- one pass --------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            if self._conn is not None:
                self._conn.close()
            self._conn = self.engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # pragma: no cover - already dead
                log.debug("closing a dead connection failed", exc_info=True)
        self._conn = None

    def process(self, target: Target) -> Outcome:
        """One batch for ``target`` with the failure policy around it."""
        outcome = self._with_policy(target)
        if outcome.locked:
            key = (target.checkpoint_name, target.shard)
            self._scans[key] = next_scan(outcome, target.projection.batch_size)
            if self.on_batch is not None:
                self.on_batch(target, outcome)
        return outcome

    def _with_policy(self, target: Target) -> Outcome:
        policy = target.projection.policy
        attempt = fresh = 0
        while True:
            try:
                if attempt > policy.retries:
                    # Last resort: event by event, parking the ones that fail.
                    return run_batch(self._connection(), self.store, target, isolate=True,
                                     attempts=attempt)  # fmt: skip
                scan = self._scans.get((target.checkpoint_name, target.shard))
                return run_batch(self._connection(), self.store, target, scan=scan)
            except CheckpointMoved:
                return Outcome(locked=False)
            except Exception as exc:
                if needs_fresh_transaction(exc) and fresh < FRESH_RERUNS:
                    fresh += 1  # the rolled-back batch reruns in a new transaction
                    log.debug("projection %s shard %s: %s; running the batch again",
                              target.checkpoint_name, target.shard, describe(exc))  # fmt: skip
                    if self.stop.wait(backoff_delay(fresh, 0.002, 0.05)):
                        return Outcome(locked=False)
                    continue
                if is_transient(exc) or attempt > policy.retries:
                    raise
                attempt += 1
                self._record_error(target, exc)
                log.warning("projection %s shard %s failed: %s", target.checkpoint_name,
                            target.shard, describe(exc))  # fmt: skip
                wait = backoff_delay(attempt, policy.backoff, policy.max_backoff)
                if attempt <= policy.retries and self.stop.wait(wait):
                    return Outcome(locked=False)

    def _record_error(self, target: Target, exc: BaseException) -> None:
        try:
            conn = self._connection()
            with conn.begin():
                conn.execute(
                    sql.SET_ERROR,
                    {"p": target.checkpoint_name, "s": target.shard, "err": clip(describe(exc))},
                )
        except Exception:
            log.debug("could not record the error", exc_info=True)

    def targets(self) -> list[Target]:
        """The (projection, shard) pairs this runner works on right now."""
        found: list[Target] = []
        for projection in self.projections:
            for shard in self.leases.shards(projection):
                found.append(Target(projection, shard, durable=self.durable))
        return found

    def step(self) -> int:
        """Drain every owned shard once; the number of events handled (applied or parked).

        A shard is drained when a batch comes back short of the batch size:
        everything readable at that moment has been applied. Shards take turns,
        one batch each, while any has more.
        """
        total = 0
        pending = self.targets()
        # Round robin: one batch of each shard per pass, so a shard with a long backlog
        # (always a full batch) does not keep the others of this runner waiting.
        while pending and not self.stop.is_set():
            full = []
            for target in pending:
                if self.stop.is_set():
                    break
                outcome = self.process(target)
                total += outcome.processed
                if outcome.full:
                    full.append(target)
            pending = full
        return total

    # -- loops -----------------------------------------------------------------

    def run_until_caught_up(self, *, target: Position | None = None, timeout: float = 60.0) -> int:
        """Apply events until every shard this runner owns has passed ``target``.

        ``target`` defaults to the head of the log at the call: every event
        committed before the call is then applied (or parked) on return, even
        when a transaction left open elsewhere holds the read horizon back for
        a while. Returns the number of events handled. Raises
        :class:`~cqrs.errors.ReadModelTimeout` (naming the transaction that
        holds the horizon, if one does) when the target is not passed within
        ``timeout`` seconds, and the database error when the database stays
        unreachable that long::

            runner.run_until_caught_up(timeout=10)
            query_bus.ask(OrdersOfCustomer("c-1"))    # sees every committed order
        """
        deadline = time.monotonic() + timeout
        total = 0
        while target is None:
            try:
                conn = self._connection()
                with conn.begin():
                    target = self.store.head(conn)
            except Exception as exc:
                self._transient_or_raise(exc, deadline)
        while not self.stop.is_set():
            try:
                n = self.step()
                total += n
                late = time.monotonic() > deadline
                # Drained (or out of time) and past the target: done.
                if (n == 0 or late) and self._passed(target):
                    return total
            except Exception as exc:
                self._transient_or_raise(exc, deadline)
                continue
            if late:
                raise self._timed_out(target, timeout)
            if n == 0:
                self.stop.wait(0.02)
        return total

    def _transient_or_raise(self, exc: Exception, deadline: float) -> None:
        if not is_transient(exc) or time.monotonic() > deadline:
            raise exc
        self._drop_connection()
        time.sleep(0.1)

    def _checkpoints(self) -> dict[tuple[str, int], Position]:
        conn = self._connection()
        with conn.begin():
            rows = conn.execute(CHECKPOINTS).all()
        return {(name, shard): Position(int(xid), int(pos)) for name, shard, xid, pos in rows}

    def _passed(self, target: Position) -> bool:
        """Whether every (projection, shard) this runner owns stands at ``target`` or past it."""
        found = self._checkpoints()
        return all(found.get((t.checkpoint_name, t.shard), START) >= target for t in self.targets())

    def _timed_out(self, target: Position, timeout: float) -> ReadModelTimeout:
        found = self._checkpoints()
        behind = [
            (t.checkpoint_name, found.get((t.checkpoint_name, t.shard), START))
            for t in self.targets()
        ]
        behind = [(name, at) for name, at in behind if at < target]
        name, reached = min(behind, key=lambda b: b[1], default=("?", None))
        return timed_out(self._connection(), name, target, reached, timeout)

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Follow the log until ``stop`` is set; the batch in flight always finishes."""
        if stop is not None:
            self.stop = stop
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    self.upkeep()
                    self.step()
                    failures = 0
                except Exception as exc:
                    if is_transient(exc):
                        self._reconnects += 1
                        log.warning("database connection lost (%s); reconnecting", describe(exc))
                        self._close_listener()
                    else:
                        # Not a handler failure (those are parked): a bug or a broken
                        # schema. Keep the process up, say so, and try again later.
                        log.exception("projection runner step failed; retrying")
                    self._drop_connection()
                    failures += 1
                    self.stop.wait(backoff_delay(failures, 0.1, 5.0))
                    continue
                # Every shard came back short of a full batch: nothing more is readable
                # now. Sleep until the hint (already queued if a commit came meanwhile)
                # or the next poll.
                self._wait()
        finally:
            self.close()

    def upkeep(self, *, force: bool = False) -> list[str]:
        """Create missing ``events`` partitions (one runner at a time); the names made.

        Creating partitions needs the owner of ``events`` (the migrator role, see
        ``cqrs.roles``). A runner under its own least-privilege role skips the
        upkeep: it says so once (INFO), and warns at each due upkeep while this
        month's or next month's partition (any, in the hash layout) is missing,
        naming the command the migrator runs (``cqrs partitions ensure``). No
        error, no retry loop.
        """
        due = self.upkeep_every is not None and (
            self._upkeep_at is None or time.monotonic() - self._upkeep_at >= self.upkeep_every
        )
        if not (force or due):
            return []
        self._upkeep_at = time.monotonic()
        conn = self._connection()
        with conn.begin():
            if not partitions.can_manage(conn):
                self._upkeep_skipped(conn)
                return []
            if not conn.execute(UPKEEP_LOCK).scalar_one():
                return []
            created = partitions.ensure(conn, self.settings)
        if created:
            log.info("created partitions %s", created)
        return created

    def _upkeep_skipped(self, conn: Connection) -> None:
        if not self._upkeep_said:
            self._upkeep_said = True
            log.info(
                "partition upkeep skipped: role %s does not own events; creating partitions "
                "is the migrator's job (`cqrs partitions ensure` from its deploy step or cron)",
                conn.execute(text("SELECT current_user")).scalar_one(),
            )
        # This month's and next month's: the ones appends need soon.
        absent = partitions.missing(conn, self.settings, months_ahead=1)
        if absent:
            log.warning(
                "events partitions %s are missing and this runner's role may not create "
                "them; run `cqrs partitions ensure` as the migrator before appends need them",
                absent,
            )

    def _wait(self) -> None:
        if self.listen and self._listener is None:
            try:
                self._listener = Listener(self.engine, self.channel)
            except Exception:
                log.debug("LISTEN failed; polling only", exc_info=True)
        if self._listener is None:
            self.stop.wait(self.poll_interval)
            return
        try:
            self._listener.wait(min(self.poll_interval, 0.25))
        except Exception:
            self._close_listener()

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def close(self) -> None:
        """Release the connections and this runner's shard leases."""
        self._close_listener()
        try:
            self.leases.release_all(self.projections)
        except Exception:
            log.debug("releasing leases failed", exc_info=True)
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # pragma: no cover - already dead
                log.debug("close failed", exc_info=True)
            self._conn = None

    def stop_on_signals(self) -> None:
        """Make SIGTERM and SIGINT stop ``run_forever`` gracefully (main thread only)."""

        def handler(signum: int, frame: Any) -> None:
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
