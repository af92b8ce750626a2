"""``streams.last_xid``: the transaction id of each stream's last append.

The log is read in ``(transaction_id, global_position)`` order, and an append
whose transaction id is lower than the stream's ``last_xid`` would put a
higher version before a lower one; the append statements refuse it
(``cqrs.errors.AppendOrderConflict``, see docs/architecture.md, "The ordering
contract").

Existing streams get, without rewriting the table, a value above the
transaction id of every event already stored: the table is locked first (every
append that had started has ended), then the column is added with the
statement snapshot's ``xmax`` as a one-off default (a stable expression, so
PostgreSQL evaluates it once and stores it in the catalog: no table rewrite).
Every transaction that already ended has an id below that ``xmax``; a
transaction still open with an older id is refused on its next append to an
existing stream and succeeds on retry. New rows always set the column
explicitly; its standing default is ``pg_current_xact_id()``.

Frozen like ``cqrs_0001``: nothing here reads the table classes.

Revision ID: cqrs_0002
Revises: cqrs_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "cqrs_0002"
down_revision: str | None = "cqrs_0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


class XID8(sa.types.UserDefinedType[int]):
    """PostgreSQL's ``xid8`` as this revision writes it (DDL only)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


def upgrade() -> None:
    if not op.get_context().as_sql:
        # A statement of its own: the ADD COLUMN below then takes its snapshot
        # (READ COMMITTED) after every earlier append has ended.
        op.execute("LOCK TABLE streams IN ACCESS EXCLUSIVE MODE")
    op.add_column(
        "streams",
        sa.Column(
            "last_xid",
            XID8(),
            server_default=sa.text("pg_snapshot_xmax(pg_current_snapshot())"),
            nullable=False,
        ),
    )
    op.alter_column("streams", "last_xid", server_default=sa.text("pg_current_xact_id()"))


def downgrade() -> None:
    op.drop_column("streams", "last_xid")
