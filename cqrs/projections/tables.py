"""Public: the projection runner's tables: ``checkpoints``, ``dead_letters``,
``projection_leases`` (which runner owns which shard) and ``projection_workers``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Index, Integer, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from cqrs.store.base import XID8, StoreBase


class CheckpointRow(StoreBase):
    """How far one shard of one projection has read the log."""

    __tablename__ = "checkpoints"

    projection: Mapped[str] = mapped_column(Text)
    shard: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    transaction_id: Mapped[int] = mapped_column(XID8, server_default=text("'0'::xid8"))
    global_position: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=text("clock_timestamp()")
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (PrimaryKeyConstraint("projection", "shard"),)


class DeadLetterRow(StoreBase):
    """An event a projection could not apply, parked with the later events of its stream."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    projection: Mapped[str] = mapped_column(Text)
    shard: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    stream_id: Mapped[str] = mapped_column(Text)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    transaction_id: Mapped[int] = mapped_column(XID8)
    global_position: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    event_type: Mapped[str] = mapped_column(Text, server_default=text("''"))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    parked_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=text("clock_timestamp()")
    )

    __table_args__ = (Index("ix_dead_letters_projection_stream", "projection", "stream_id"),)


class LeaseRow(StoreBase):
    """One shard of one projection, owned by one runner until ``expires_at``."""

    __tablename__ = "projection_leases"

    projection: Mapped[str] = mapped_column(Text)
    shard: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True))

    __table_args__ = (PrimaryKeyConstraint("projection", "shard"),)


class WorkerRow(StoreBase):
    """A live runner of a projection: shards are shared among the unexpired ones."""

    __tablename__ = "projection_workers"

    projection: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True))

    __table_args__ = (PrimaryKeyConstraint("projection", "owner"),)


checkpoints = cast(Table, CheckpointRow.__table__)
dead_letters = cast(Table, DeadLetterRow.__table__)
leases = cast(Table, LeaseRow.__table__)
workers = cast(Table, WorkerRow.__table__)
