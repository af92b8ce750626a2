"""Public: the ``snapshots`` table (latest snapshot per stream)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from cqrs.store.base import StoreBase


class SnapshotRow(StoreBase):
    """The latest snapshot of one aggregate stream."""

    __tablename__ = "snapshots"

    stream_id: Mapped[str] = mapped_column(Text, primary_key=True)
    aggregate_type: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    schema_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    state: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=text("clock_timestamp()")
    )


snapshots = cast(Table, SnapshotRow.__table__)
