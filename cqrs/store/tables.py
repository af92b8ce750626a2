"""Public: the event log's tables, ORM-mapped: ``streams`` and ``events``.

``streams`` is the optimistic-concurrency authority: one row per stream whose
``version`` only moves by compare-and-set. ``events`` is partitioned (monthly
RANGE on ``recorded_at`` or HASH on ``stream_id``, see ``cqrs.store.partitions``);
PostgreSQL requires every unique key of a partitioned table to contain the
partition key, so the primary key is ``(stream_id, version, recorded_at)`` in
both layouts and per-stream version uniqueness is enforced by ``streams``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Sequence,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from cqrs.store.base import XID8, StoreBase

RANGE_CLAUSE = "RANGE (recorded_at)"
HASH_CLAUSE = "HASH (stream_id)"

global_position_seq = Sequence("events_global_position_seq", metadata=StoreBase.metadata)


class StreamRow(StoreBase):
    """One row per stream; ``version`` is the number of its last event.

    ``last_xid`` is the transaction id of the stream's last append: an append
    from a transaction with a lower id is refused (it would reach readers
    before the version it follows; see ``cqrs.errors.AppendOrderConflict``).
    """

    __tablename__ = "streams"

    stream_id: Mapped[str] = mapped_column(Text, primary_key=True)
    stream_type: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=text("clock_timestamp()")
    )
    archived: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    last_xid: Mapped[int] = mapped_column(XID8, server_default=text("pg_current_xact_id()"))


class EventRow(StoreBase):
    """One stored event. Positions come from a sequence, not IDENTITY (see module doc)."""

    __tablename__ = "events"

    global_position: Mapped[int] = mapped_column(
        BigInteger, server_default=global_position_seq.next_value()
    )
    transaction_id: Mapped[int] = mapped_column(XID8, server_default=text("pg_current_xact_id()"))
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    stream_id: Mapped[str] = mapped_column(Text)
    stream_type: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(Text)
    schema_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    recorded_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=text("clock_timestamp()")
    )

    __table_args__ = (
        PrimaryKeyConstraint("stream_id", "version", "recorded_at"),
        Index("ix_events_position", "transaction_id", "global_position"),
        Index("ix_events_type_time", "event_type", "recorded_at"),
        {"postgresql_partition_by": RANGE_CLAUSE},
    )


streams = cast(Table, StreamRow.__table__)
events = cast(Table, EventRow.__table__)
