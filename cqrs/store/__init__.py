"""Public: the event log: tables, partitions and the ``EventStore``."""

from cqrs.store.event_store import EventStore, StreamInfo, connection_of
from cqrs.store.expected import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    ExpectedVersion,
    StreamAppend,
)
from cqrs.store.interface import EventStoreProtocol

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "EventStore",
    "EventStoreProtocol",
    "ExpectedVersion",
    "StreamAppend",
    "StreamInfo",
    "connection_of",
]
