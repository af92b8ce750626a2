"""Public: the ``processed_commands`` table that makes commands idempotent."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from cqrs.store.base import StoreBase


class ProcessedCommandRow(StoreBase):
    """A command id already handled, with the result its first run returned."""

    __tablename__ = "processed_commands"

    command_id: Mapped[str] = mapped_column(Text, primary_key=True)
    command_type: Mapped[str] = mapped_column(Text)
    result: Mapped[Any | None] = mapped_column(JSONB, nullable=True)
    processed_at: Mapped[datetime] = mapped_column(
        TIMESTAMP(timezone=True), server_default=text("clock_timestamp()")
    )


processed_commands = cast(Table, ProcessedCommandRow.__table__)
