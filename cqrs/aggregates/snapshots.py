"""Public: snapshots of aggregate state, so loading reads only the tail of a stream.

The policy is per aggregate class (``snapshot_every = N``); the repository
writes the latest snapshot in the same transaction as the events. A snapshot
that cannot be read back (another aggregate type, an older
``snapshot_version``, fields that no longer match, values that do not
structure) is ignored with a :class:`SnapshotIgnored` warning and the
aggregate is rebuilt from its events: a snapshot never yields wrong state.

    >>> class Cart(Aggregate):
    ...     snapshot_every = 100                   # snapshot at versions 100, 200, ...
    ...     snapshot_version = 2                   # bump when the state's shape changes
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, TypeVar

import attrs
import cattrs
from sqlalchemy import Connection, text

from cqrs import jsontext
from cqrs.aggregates.aggregate import Aggregate
from cqrs.errors import SerializationError
from cqrs.events.codec import make_converter

A = TypeVar("A", bound=Aggregate)
log = logging.getLogger("cqrs.snapshots")

_LOAD = text(
    "SELECT aggregate_type, version, schema_version, state FROM snapshots WHERE stream_id = :sid"
)
_SAVE = text(
    """
INSERT INTO snapshots AS s (stream_id, aggregate_type, version, schema_version, state)
VALUES (:sid, :atype, :version, :sv, CAST(:state AS jsonb))
ON CONFLICT (stream_id) DO UPDATE
SET aggregate_type = EXCLUDED.aggregate_type, version = EXCLUDED.version,
    schema_version = EXCLUDED.schema_version, state = EXCLUDED.state,
    created_at = clock_timestamp()
WHERE s.version < EXCLUDED.version OR s.schema_version <> EXCLUDED.schema_version
"""
)


class SnapshotIgnored(UserWarning):
    """A stored snapshot could not be used; the aggregate was rebuilt from events."""


@attrs.frozen
class Snapshot:
    """A stored snapshot as read from the ``snapshots`` table."""

    stream_id: str
    aggregate_type: str
    version: int
    schema_version: int
    state: dict[str, Any]


def snapshot_due(cls: type[Aggregate], before: int, after: int) -> bool:
    """Whether saving from version ``before`` to ``after`` crosses the class's interval.

    >>> class Tally(Aggregate):
    ...     snapshot_every = 10
    >>> snapshot_due(Tally, 9, 10), snapshot_due(Tally, 10, 11), snapshot_due(Tally, 8, 23)
    (True, False, True)
    """
    every = cls.snapshot_every
    return every is not None and after // every > before // every


class SnapshotStore:
    """Reads and writes the ``snapshots`` table for aggregates.

    ``converter`` turns state values into JSON and back (the event codec's
    conventions by default: Decimal as string, datetimes ISO 8601, ...).
    """

    def __init__(self, converter: cattrs.Converter | None = None) -> None:
        if converter is None:
            converter = make_converter()
            converter.register_unstructure_hook(set, sorted)
            converter.register_unstructure_hook(frozenset, sorted)
        self.converter = converter

    def read(self, conn: Connection, stream_id: str) -> Snapshot | None:
        """The stored snapshot row of ``stream_id``, or ``None``."""
        row = conn.execute(_LOAD, {"sid": stream_id}).first()
        if row is None:
            return None
        atype, version, schema_version, state = row
        return Snapshot(stream_id, atype, version, schema_version, state)

    def load(self, conn: Connection, cls: type[A], id: str) -> A | None:
        """The aggregate restored from its snapshot, or ``None`` (none, or unreadable)."""
        snapshot = self.read(conn, cls.stream_id_for(id))
        if snapshot is None:
            return None
        try:
            return self.restore(cls, id, snapshot)
        except _Unreadable as exc:
            message = (
                f"snapshot of {snapshot.stream_id!r} at version {snapshot.version} ignored: "
                f"{exc}; rebuilding {cls.__qualname__} from its events (the next snapshot "
                "replaces it)"
            )
            log.warning(message)
            warnings.warn(message, SnapshotIgnored, stacklevel=4)
            return None

    def restore(self, cls: type[A], id: str, snapshot: Snapshot) -> A:
        """Build ``cls`` from ``snapshot``; raises an internal error when it does not fit."""
        if snapshot.aggregate_type != cls.aggregate_type:
            raise _Unreadable(
                f"it belongs to aggregate type {snapshot.aggregate_type!r}, "
                f"not {cls.aggregate_type!r}"
            )
        if snapshot.schema_version != cls.snapshot_version:
            raise _Unreadable(
                f"its schema version is {snapshot.schema_version}, "
                f"the class expects {cls.snapshot_version}"
            )
        aggregate = cls(id)
        expected = set(aggregate.snapshot_state())
        stored = snapshot.state if isinstance(snapshot.state, dict) else {}
        if set(stored) != expected:
            raise _Unreadable(
                f"its fields {sorted(stored)} differ from the class's {sorted(expected)} "
                "(bump snapshot_version when the state changes shape)"
            )
        types = cls.state_types()
        try:
            state = {
                name: self.converter.structure(value, types.get(name, Any))
                for name, value in stored.items()
            }
            aggregate.restore_state(state)
        except Exception as exc:
            raise _Unreadable(f"its state does not structure: {exc!r}") from exc
        aggregate.version = snapshot.version
        return aggregate

    def save(self, conn: Connection, aggregate: Aggregate) -> None:
        """Write ``aggregate``'s current state as the stream's latest snapshot.

        Call it with no pending events (after the append); an older stored
        snapshot is replaced, a newer one kept.
        """
        if aggregate.pending_events:
            raise SerializationError(
                f"cannot snapshot {aggregate.stream_id!r} with unsaved events; save it first"
            )
        try:
            state = jsontext.dumps(self.converter.unstructure(aggregate.snapshot_state()))
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"snapshot state of {type(aggregate).__qualname__} does not serialise to JSON: "
                f"{exc}; use JSON-friendly attribute types or override snapshot_state and "
                "restore_state"
            ) from exc
        conn.execute(
            _SAVE,
            {
                "sid": aggregate.stream_id,
                "atype": aggregate.aggregate_type,
                "version": aggregate.version,
                "sv": aggregate.snapshot_version,
                "state": state,
            },
        )


class _Unreadable(Exception):
    pass
