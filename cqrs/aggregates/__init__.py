"""Public: aggregates, their repository and snapshots."""

from cqrs.aggregates.aggregate import Aggregate, applies
from cqrs.aggregates.repository import Repository
from cqrs.aggregates.snapshots import Snapshot, SnapshotIgnored, SnapshotStore, snapshot_due

__all__ = [
    "Aggregate",
    "Repository",
    "Snapshot",
    "SnapshotIgnored",
    "SnapshotStore",
    "applies",
    "snapshot_due",
]
