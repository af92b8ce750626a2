"""The toolkit's tables, written out: the ``events_global_position_seq`` sequence,
``streams``, ``events`` (partitioned) with its first partitions, ``snapshots``,
``processed_commands``, ``checkpoints``, ``dead_letters``, ``projection_leases``
and ``projection_workers``.

This revision is frozen: every column, type, server default, key and index is
spelled out here and nothing is read from ``cqrs.schema.metadata`` or the table
classes, so what it does never changes with them. A change to a toolkit table
class needs a revision of its own in this branch (``down_revision`` = the
branch head); ``tests/integration/test_alembic_frozen.py`` fails until there is
one.

The ``events`` layout follows ``cqrs.migrations.migration_settings()``
(``-x cqrs_partitioning=hash``, ``config.attributes``, the ini file, or the
environment; monthly range by default). When the database already holds an
unpartitioned ``events`` table (the origin document's layout), this revision
makes the partitioned table as ``events_shadow`` (the same frozen columns), and
``op.import_legacy_events`` copies the old rows across and swaps the names; the
old table is kept as ``events_legacy``.

Revision ID: cqrs_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import cqrs.migrations  # registers op.ensure_event_partitions and op.import_legacy_events

revision = "cqrs_0001"
down_revision: str | None = None
branch_labels = ("cqrs",)
depends_on: str | None = None

SEQUENCE = "events_global_position_seq"
PARTITION_BY = {"range": "RANGE (recorded_at)", "hash": "HASH (stream_id)"}
SHADOW = "events_shadow"
"""The name ``cqrs.migrations.legacy`` copies a legacy table's rows into."""
TABLES = (
    "checkpoints",
    "dead_letters",
    "events",
    "processed_commands",
    "projection_leases",
    "projection_workers",
    "snapshots",
    "streams",
)
NOW = "clock_timestamp()"


class XID8(sa.types.UserDefinedType[int]):
    """PostgreSQL's ``xid8`` as this revision writes it (DDL only)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


def _timestamptz() -> postgresql.TIMESTAMP:
    return postgresql.TIMESTAMP(timezone=True)


def _legacy_events_table() -> bool:
    """Whether the current schema holds a plain (unpartitioned) ``events`` table."""
    if op.get_context().as_sql:
        return False
    return _relkind("events") == "r"


def _relkind(name: str) -> str | None:
    kind = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT relkind::text FROM pg_class WHERE relname = :n "
                "AND relnamespace = current_schema()::regnamespace"
            ),
            {"n": name},
        )
        .scalar_one_or_none()
    )
    return None if kind is None else str(kind)


def _create_events(name: str, partitioning: str, index_suffix: str = "") -> None:
    """``events`` (or the legacy import's shadow of it), partitioned, no partitions yet."""
    op.create_table(
        name,
        sa.Column(
            "global_position",
            sa.BigInteger(),
            server_default=sa.text(f"nextval('{SEQUENCE}')"),
            nullable=False,
        ),
        sa.Column(
            "transaction_id",
            XID8(),
            server_default=sa.text("pg_current_xact_id()"),
            nullable=False,
        ),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("stream_type", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("schema_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column(
            "metadata", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("recorded_at", _timestamptz(), server_default=sa.text(NOW), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "version", "recorded_at", name=op.f(f"pk_{name}")),
        postgresql_partition_by=PARTITION_BY[partitioning],
    )
    op.create_index(
        op.f(f"ix_events_position{index_suffix}"), name, ["transaction_id", "global_position"]
    )
    op.create_index(op.f(f"ix_events_type_time{index_suffix}"), name, ["event_type", "recorded_at"])


def _create_others() -> None:
    """Every toolkit table but ``events``, in the order ``sorted_tables`` had them."""
    op.create_table(
        "checkpoints",
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("shard", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("transaction_id", XID8(), server_default=sa.text("'0'::xid8"), nullable=False),
        sa.Column("global_position", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", _timestamptz(), server_default=sa.text(NOW), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("projection", "shard", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),  # bigserial
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("shard", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("transaction_id", XID8(), nullable=False),
        sa.Column("global_position", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("event_type", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("parked_at", _timestamptz(), server_default=sa.text(NOW), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(
        op.f("ix_dead_letters_projection_stream"), "dead_letters", ["projection", "stream_id"]
    )
    op.create_table(
        "processed_commands",
        sa.Column("command_id", sa.Text(), nullable=False),
        sa.Column("command_type", sa.Text(), nullable=False),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.Column("processed_at", _timestamptz(), server_default=sa.text(NOW), nullable=False),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_processed_commands")),
    )
    op.create_table(
        "projection_leases",
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("expires_at", _timestamptz(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "shard", name=op.f("pk_projection_leases")),
    )
    op.create_table(
        "projection_workers",
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("expires_at", _timestamptz(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "owner", name=op.f("pk_projection_workers")),
    )
    op.create_table(
        "snapshots",
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("aggregate_type", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", _timestamptz(), server_default=sa.text(NOW), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_snapshots")),
    )
    op.create_table(
        "streams",
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("stream_type", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _timestamptz(), server_default=sa.text(NOW), nullable=False),
        sa.Column("archived", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_streams")),
    )


def upgrade() -> None:
    settings = cqrs.migrations.migration_settings()  # validates the layout before any DDL
    op.execute(sa.schema.CreateSequence(sa.Sequence(SEQUENCE)))
    _create_others()
    if _legacy_events_table():
        if _relkind(SHADOW) is None:  # else: left by an earlier import run, resumed
            _create_events(SHADOW, settings.partitioning, index_suffix="_shadow")
        op.import_legacy_events(  # type: ignore[attr-defined]
            "events",
            partitioning=settings.partitioning,
            months_ahead=settings.months_ahead,
            hash_partitions=settings.hash_partitions,
            create_tables=False,
        )
        return
    _create_events("events", settings.partitioning)
    op.ensure_event_partitions(  # type: ignore[attr-defined]
        months_ahead=settings.months_ahead, hash_partitions=settings.hash_partitions
    )


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)  # the partitions of events go with it; events_legacy stays
    op.execute(sa.schema.DropSequence(sa.Sequence(SEQUENCE)))
