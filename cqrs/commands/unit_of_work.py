"""Public: ``UnitOfWork``, everything one command writes, in one transaction.

A handler asks the unit of work for repositories; when the handler returns,
the bus calls :meth:`UnitOfWork.flush`, which appends the new events of
every touched aggregate (with the command's metadata) and runs the inline
projections on them, all in the caller's transaction; the bus (or the caller
who owns the transaction) then commits. If anything raises, the transaction
rolls back and nothing is written::

    >>> def place_order(cmd: PlaceOrder, uow: UnitOfWork) -> None:
    ...     order = uow.repository(Order).create(cmd.order_id)       # Repository[Order]
    ...     order.place(cmd.customer_id, cmd.total)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from cqrs.aggregates.aggregate import Aggregate
from cqrs.aggregates.repository import Repository, default_snapshots, default_store
from cqrs.aggregates.snapshots import SnapshotStore
from cqrs.commands.inline import InlineProjection
from cqrs.errors import AppendRefused, CommandError, ConcurrencyError, StreamAlreadyExists
from cqrs.events.model import Event, RecordedEvent
from cqrs.store.event_store import connection_of
from cqrs.store.expected import AppendResult
from cqrs.store.interface import EventStoreProtocol

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    """Collects the aggregates a command touches and writes them together.

    ``metadata`` is merged into every appended event's metadata (the bus puts
    ``command_id``, ``correlation_id`` and ``causation_id`` there).
    """

    def __init__(
        self,
        session: Session,
        *,
        store: EventStoreProtocol | None = None,
        snapshots: SnapshotStore | None = None,
        inline_projections: Sequence[InlineProjection] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.session = session
        self.store = store or default_store()
        self.snapshots = snapshots or default_snapshots()
        self.inline_projections = tuple(inline_projections)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._repositories: dict[type[Aggregate], Repository[Any]] = {}
        self._recorded: list[RecordedEvent[Event]] = []
        self._flushed = False

    def repository(self, aggregate: type[A]) -> Repository[A]:
        """The repository for ``aggregate`` in this unit of work (one per class)."""
        repo = self._repositories.get(aggregate)
        if repo is None:
            repo = Repository(aggregate, self.session, store=self.store, snapshots=self.snapshots)
            self._repositories[aggregate] = repo
        return repo

    @staticmethod
    def _refusal(
        touched: list[tuple[Repository[Any], Aggregate]], exc: ConcurrencyError
    ) -> ConcurrencyError:
        """``exc`` as the repositories explain it: a created aggregate whose stream
        exists is :class:`~cqrs.errors.StreamAlreadyExists` (not retried)."""
        by_stream = {aggregate.stream_id: (repo, aggregate) for repo, aggregate in touched}
        refusals = exc.refusals if isinstance(exc, AppendRefused) else {exc.stream_id: exc}
        for stream_id, refusal in refusals.items():
            if stream_id in by_stream and isinstance(refusal, ConcurrencyError):
                repo, aggregate = by_stream[stream_id]
                explained = repo.refusal(aggregate, refusal)
                if isinstance(explained, StreamAlreadyExists):
                    return explained
        return exc

    @property
    def recorded(self) -> tuple[RecordedEvent[Event], ...]:
        """The events appended by :meth:`flush`, in append order."""
        return tuple(self._recorded)

    def flush(self) -> list[AppendResult]:
        """Append the pending events of every touched aggregate, then run inline projections.

        Like ``Session.flush`` it writes inside the open transaction and commits
        nothing: the caller (normally the bus) commits, so the events, the
        projections and the caller's own writes land together.
        """
        if self._flushed:
            raise CommandError("this unit of work was already flushed; start a new one")
        self._flushed = True
        touched = [
            (repo, aggregate)
            for repo in self._repositories.values()
            for aggregate in repo.touched
            if aggregate.pending_events
        ]
        appends = [repo.pending_append(aggregate) for repo, aggregate in touched]
        # One statement for every touched stream, all-or-nothing (EventStore.append_many).
        try:
            results = self.store.append_many(
                connection_of(self.session),
                [a for a in appends if a is not None],
                metadata=self.metadata,
            )
        except ConcurrencyError as exc:
            raise self._refusal(touched, exc) from exc
        for repo, aggregate in touched:
            repo.saved(aggregate)
        for result in results:
            self._recorded.extend(result.recorded)
        if self._recorded:
            for projection in self.inline_projections:
                projection.apply_inline(self.session, self._recorded)
        return results
