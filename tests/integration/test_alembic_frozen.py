"""The ``cqrs`` branch is frozen: its revisions spell every table out instead of
reading the table classes, and together they still build exactly what
``cqrs.schema.metadata`` declares. Change a toolkit table class without adding a
revision to the branch and this module fails."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Literal

import pytest
from alembic.autogenerate import compare_metadata, render_python_code
from alembic.operations.ops import UpgradeOps
from alembic.runtime.migration import MigrationContext
from alembic_support import empty_schema, relations
from sqlalchemy import Column, Connection, MetaData, Text, text

import cqrs.migrations
import cqrs.schema
from cqrs.config import Settings
from cqrs.errors import LegacyImportError
from cqrs.migrations import ImportLegacyEventsOp, import_legacy_events
from cqrs.store.base import NAMING_CONVENTION

REVISIONS = sorted(Path(cqrs.migrations.VERSIONS).glob("*.py"))
ALLOWED_CQRS_IMPORTS = {"cqrs.migrations"}  # the operations only, never a table
FORBIDDEN_NAMES = {
    "StoreBase",
    "metadata",
    "sorted_tables",
    "events_table_for",
    "create_schema",
    "create_all",
    "to_metadata",
    "from_table",
    "global_position_seq",
}
"""Ways a revision could take its tables from the code of the day instead of itself."""
LEGACY_DDL = (
    "CREATE TABLE events (id bigserial PRIMARY KEY, event_id uuid UNIQUE, event_type text, "
    "aggregate_id uuid, aggregate_type text, event_data jsonb, metadata jsonb, "
    "version integer, created_at timestamptz DEFAULT now())"
)


def _snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """The toolkit's parent tables as the catalog sees them; partitions are left out
    (PostgreSQL derives their columns and indexes from the parent) and counted."""
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    mine = (
        "c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
        "AND NOT c.relispartition AND c.relname NOT IN ('alembic_version', 'events_legacy')"
    )
    queries = {
        "sequences": "SELECT sequencename, data_type::text, start_value, increment_by, "
        "cycle FROM pg_sequences WHERE schemaname = current_schema() "
        "AND sequencename <> 'events_id_seq' ORDER BY 1",
        "tables": "SELECT c.relname, c.relkind::text, pg_get_partkeydef(c.oid), "
        "(SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid) "
        f"FROM pg_class c WHERE {mine} ORDER BY 1",
        "columns": "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, "
        "a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        f"WHERE {mine} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2",
        "constraints": "SELECT c.relname, k.conname, k.contype::text, "
        "pg_get_constraintdef(k.oid) FROM pg_constraint k "
        f"JOIN pg_class c ON c.oid = k.conrelid WHERE {mine} ORDER BY 1, 2",
        "indexes": "SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid) "
        "FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid "
        f"JOIN pg_class i ON i.oid = x.indexrelid WHERE {mine} ORDER BY 1, 2",
        # the append-only guards (cqrs.store.guards / cqrs_0003), partitions' included
        "triggers": "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal "
        "AND c.relnamespace = current_schema()::regnamespace ORDER BY 1, 2",
        "functions": "SELECT p.proname, pg_get_function_identity_arguments(p.oid), p.prosrc "
        "FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace ORDER BY 1, 2",
    }
    return {
        name: [
            tuple(str(v).replace(f"{schema}.", "") if isinstance(v, str) else v for v in row)
            for row in conn.execute(text(sql))
        ]
        for name, sql in queries.items()
    }


def _diff(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]) -> set[Any]:
    return {(k, row) for k in a for row in set(a[k]) ^ set(b[k])}


def _hooked(conn: Connection) -> MigrationContext:
    return MigrationContext.configure(conn, opts=cqrs.migrations.autogenerate_options(conn))


@pytest.mark.parametrize("path", REVISIONS, ids=lambda p: p.name)
def test_revisions_do_not_read_the_table_classes(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {m for m in imported if m.split(".")[0] == "cqrs"} <= ALLOWED_CQRS_IMPORTS
    assert not any(
        isinstance(n, ast.ImportFrom) and n.module == "cqrs.migrations" for n in ast.walk(tree)
    )
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not used & FORBIDDEN_NAMES, (
        f"{path.name} builds tables from code: {used & FORBIDDEN_NAMES}"
    )


@pytest.mark.parametrize("layout", ["range", "hash"])
@pytest.mark.parametrize("legacy", [False, True], ids=["fresh", "legacy"])
def test_the_branch_builds_what_the_metadata_declares(
    cqrs_database_url: str, layout: Literal["range", "hash"], legacy: bool
) -> None:
    settings = Settings(partitioning=layout, hash_partitions=4)
    with empty_schema(cqrs_database_url) as declared, declared.begin() as conn:
        cqrs.schema.create_schema(conn, settings)
        expected = _snapshot(conn)
    with empty_schema(cqrs_database_url) as engine, engine.connect() as conn:
        if legacy:
            conn.execute(text(LEGACY_DDL))
            conn.execute(
                text(
                    "INSERT INTO events (event_id, event_type, aggregate_id, aggregate_type, "
                    "event_data, version) VALUES (gen_random_uuid(), 'x.y', gen_random_uuid(), "
                    "'x', '{}', 1)"
                )
            )
            conn.commit()
        cqrs.migrations.upgrade(conn, settings)
        cqrs.migrations.check(conn)  # autogenerate against cqrs.schema.metadata: clean
        assert compare_metadata(_hooked(conn), cqrs.schema.metadata) == []
        built = _snapshot(conn)
        assert _diff(built, expected) == set()
        assert (relations(conn).get("events_legacy") == "r") is legacy
        cqrs.migrations.downgrade(conn)
        left = {"alembic_version", "events_legacy"} if legacy else {"alembic_version"}
        assert set(relations(conn)) == left
        assert _snapshot(conn)["sequences"] == []
        assert _snapshot(conn)["functions"] == []
        conn.commit()


def test_a_changed_table_class_without_a_revision_is_caught(cqrs_database_url: str) -> None:
    """What a developer adding ``streams.tenant`` to ``StreamRow`` (and no revision)
    would meet: autogenerate names the column and the catalogs differ."""
    changed = MetaData(naming_convention=NAMING_CONVENTION)
    for table in cqrs.schema.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["streams"].append_column(Column("tenant", Text, nullable=True))
    with empty_schema(cqrs_database_url) as declared, declared.begin() as conn:
        cqrs.schema.create_schema(conn)
        conn.execute(text("ALTER TABLE streams ADD COLUMN tenant text"))  # the changed class
        expected = _snapshot(conn)
    with empty_schema(cqrs_database_url) as engine, engine.connect() as conn:
        cqrs.migrations.upgrade(conn)
        diffs = compare_metadata(_hooked(conn), changed)
        assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "streams", "tenant")]
        assert {(kind, row[0], row[2]) for kind, row in _diff(_snapshot(conn), expected)} == {
            ("columns", "streams", "tenant")
        }
        conn.rollback()


def test_import_without_create_tables_needs_the_callers_tables(cqrs_database_url: str) -> None:
    """``create_tables=False`` (what the frozen revision passes) makes nothing from the
    metadata; without the caller's ``streams`` and ``events_shadow`` it stops first."""
    with empty_schema(cqrs_database_url) as engine, engine.begin() as conn:
        conn.execute(text(LEGACY_DDL))
        with pytest.raises(LegacyImportError, match=r"\['streams', 'events_shadow'\].*create"):
            import_legacy_events(conn, create_tables=False)
        assert set(relations(conn)) == {"events"}


def test_the_switch_is_rendered_only_when_off() -> None:
    code = render_python_code(
        UpgradeOps(ops=[ImportLegacyEventsOp(), ImportLegacyEventsOp(create_tables=False)])
    )
    lines = [line.strip() for line in code.splitlines() if "import_legacy_events" in line]
    assert [line.endswith("create_tables=False)") for line in lines] == [False, True]
