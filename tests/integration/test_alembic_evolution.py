"""Evolving ``events`` through migrations: a new column and a new index reach every
partition (and partitions made later), and the index is built with rows present."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic_support import alembic_config, empty_schema
from sqlalchemy import Connection, text

import cqrs.migrations  # noqa: F401  (registers the operations)
from cqrs.config import Settings
from cqrs.errors import ConfigurationError
from cqrs.store import partitions

REVISIONS = {
    "evo_0001_tenant.py": '''
        """add events.tenant"""
        import sqlalchemy as sa
        from alembic import op

        revision = "evo_0001"
        down_revision = "cqrs_0003"
        branch_labels = None
        depends_on = None


        def upgrade():
            op.add_column("events", sa.Column("tenant", sa.Text(), nullable=True))


        def downgrade():
            op.drop_column("events", "tenant")
        ''',
    "evo_0002_tenant_index.py": '''
        """index events.tenant without a long lock"""
        from alembic import op

        import cqrs.migrations  # noqa: F401

        revision = "evo_0002"
        down_revision = "evo_0001"
        branch_labels = None
        depends_on = None


        def upgrade():
            op.create_index_on_partitioned("ix_events_tenant", "events", ["tenant"])


        def downgrade():
            op.drop_index("ix_events_tenant", table_name="events")
        ''',
}


def _insert(conn: Connection, stream_id: str, version: int, at: datetime) -> None:
    conn.execute(
        text(
            "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, "
            "recorded_at) VALUES (:e, :s, 'demo', :v, 'demo.happened', '{}'::jsonb, :at)"
        ),
        {"e": uuid.uuid4(), "s": stream_id, "v": version, "at": at},
    )


def _columns(conn: Connection, table: str) -> set[str]:
    rows = conn.execute(
        text(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :t"
        ),
        {"t": table},
    )
    return set(rows.scalars())


def _index_children(conn: Connection, parent_index: str) -> dict[str, bool]:
    """Partition -> whether its index attached to ``parent_index`` is valid."""
    rows = conn.execute(
        text(
            "SELECT t.relname, x.indisvalid FROM pg_inherits i "
            "JOIN pg_index x ON x.indexrelid = i.inhrelid "
            "JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE i.inhparent = to_regclass(:p)"
        ),
        {"p": parent_index},
    )
    return {name: valid for name, valid in rows}


def _parent_valid(conn: Connection, index: str) -> bool:
    return bool(
        conn.execute(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:i)"),
            {"i": index},
        ).scalar_one()
    )


def test_new_column_and_index_reach_every_partition(cqrs_database_url: str, tmp_path: Path) -> None:
    for name, source in REVISIONS.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    with empty_schema(cqrs_database_url) as engine, engine.connect() as conn:
        config = alembic_config(conn, extra_versions=tmp_path)
        command.upgrade(config, "cqrs@head")
        conn.execute(text("INSERT INTO streams VALUES ('s-1', 'demo', 1)"))
        _insert(conn, "s-1", 1, datetime.now(UTC))
        conn.commit()

        command.upgrade(config, "heads")
        names = [p.name for p in partitions.list_partitions(conn)]
        assert len(names) == 4
        for name in names:
            assert "tenant" in _columns(conn, name), name
        assert _parent_valid(conn, "ix_events_tenant")
        assert set(_index_children(conn, "ix_events_tenant")) == set(names)

        # a partition made after the migration gets the column and the index too
        made = partitions.ensure(conn, Settings(months_ahead=1), today=date(2031, 5, 1))
        conn.commit()
        assert made == ["events_y2031m05", "events_y2031m06"]
        assert "tenant" in _columns(conn, "events_y2031m05")
        assert "events_y2031m05" in _index_children(conn, "ix_events_tenant")

        command.downgrade(config, "evo_0001")
        assert conn.execute(text("SELECT to_regclass('ix_events_tenant')")).scalar() is None
        command.downgrade(config, "cqrs_0003")
        assert "tenant" not in _columns(conn, "events_y2031m05")
        conn.commit()


def test_index_operation_on_a_table_with_rows(cqrs_database_url: str) -> None:
    with empty_schema(cqrs_database_url) as engine, engine.connect() as conn:
        command.upgrade(alembic_config(conn), "heads")
        partitions.ensure_months(conn, date(2025, 1, 1), 2)
        conn.execute(text("INSERT INTO streams VALUES ('old', 'demo', 50), ('new', 'demo', 50)"))
        for v in range(1, 51):
            _insert(conn, "old", v, datetime(2025, 1, 10, tzinfo=UTC))
            _insert(conn, "new", v, datetime.now(UTC))
        conn.commit()

        ops = Operations(MigrationContext.configure(conn))
        conn.execute(text("SELECT 1"))  # a transaction Alembic does not own
        with pytest.raises(ConfigurationError, match="CONCURRENTLY"):
            ops.create_index_on_partitioned(  # type: ignore[attr-defined]
                "ix_events_stream_type", "events", ["stream_type"]
            )
        conn.commit()  # the operation needs a connection outside any transaction
        ops.create_index_on_partitioned(  # type: ignore[attr-defined]
            "ix_events_stream_type", "events", ["stream_type", "event_type"]
        )
        conn.commit()
        children = _index_children(conn, "ix_events_stream_type")
        names = {p.name for p in partitions.list_partitions(conn)}
        assert set(children) == names and all(children.values())
        assert _parent_valid(conn, "ix_events_stream_type")
        definition = conn.execute(
            text("SELECT pg_get_indexdef(to_regclass('events_y2025m01_ix_events_stream_type'))")
        ).scalar_one()
        assert "(stream_type, event_type)" in definition

        # running it again (e.g. after an interruption) finds everything in place
        conn.commit()
        ops.create_index_on_partitioned(  # type: ignore[attr-defined]
            "ix_events_stream_type", "events", ["stream_type", "event_type"]
        )
        conn.commit()
        assert _index_children(conn, "ix_events_stream_type") == children
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = conn.execute(
            text("EXPLAIN SELECT * FROM events WHERE stream_type = 'demo' AND event_type = 'x'")
        ).scalars()
        assert any("events_y2025m01_ix_events_stream_type" in line for line in plan)
        conn.rollback()
