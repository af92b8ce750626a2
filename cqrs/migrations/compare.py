"""Public: autogenerate hooks that keep ``alembic check`` clean on a partitioned schema.

Alembic reflects every partition of ``events`` (and every index PostgreSQL made
on them) as a table of its own and would offer to drop them all (alembic issue
539). ``include_name`` / ``include_object`` hide the toolkit's partitions -
attached, detached or being built - and their indexes, and keep the parent.
``register_xid8`` teaches the reflection the ``xid8`` type, and
``compare_server_default`` compares defaults as PostgreSQL prints them
(``nextval('s'::regclass)`` equals ``nextval('s')``) without evaluating them,
so volatile defaults such as ``clock_timestamp()`` never flap::

    context.configure(
        connection=connection,
        target_metadata=[Base.metadata, cqrs.schema.metadata],
        include_name=cqrs.migrations.include_name,
    )
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, Index, Table
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.types import TypeEngine

from cqrs.store.base import XID8
from cqrs.store.partitions import PARTITION_NAME

HIDDEN = re.compile(rf"{PARTITION_NAME.pattern}|^events_(legacy|shadow)$")
"""Tables autogenerate must not see: partitions (toolkit names) and the legacy
import's ``events_legacy`` / ``events_shadow``."""


def hidden_table(name: str | None) -> bool:
    """Whether ``name`` is a table the toolkit manages outside autogenerate."""
    return bool(name) and HIDDEN.match(str(name)) is not None


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Alembic ``include_name`` hook: drop partitions and their indexes, keep the rest.

    >>> include_name("events_y2026m11", "table", {"schema_name": None})
    False
    >>> include_name("events", "table", {"schema_name": None})
    True
    """
    if type_ == "table":
        return not hidden_table(name)
    return not hidden_table(parent_names.get("table_name"))


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic ``include_object`` hook, the same rule for reflected objects."""
    if isinstance(obj, Table):
        return not hidden_table(obj.name)
    if isinstance(obj, Index) and obj.table is not None:
        return not hidden_table(obj.table.name)
    table = getattr(obj, "table", None)
    return not (isinstance(table, Table) and hidden_table(table.name))


def register_xid8(dialect: Dialect) -> None:
    """Make reflection read ``xid8`` columns as ``XID8`` (this dialect instance only)."""
    names = dict(getattr(dialect, "ischema_names", {}))
    names["xid8"] = XID8
    dialect.ischema_names = names  # type: ignore[attr-defined]


_CAST = re.compile(r"::[a-z_][a-z0-9_]*(\[\])?")
_NEXTVAL = re.compile(r"nextval\('(?:[a-z0-9_\"]+\.)?")
_QUOTED_NUMBER = re.compile(r"'(-?\d+(?:\.\d+)?)'")


def normalise_default(sql: str | None) -> str | None:
    """A server default as text with casts, spaces and schema names taken out.

    >>> normalise_default("nextval('events_global_position_seq'::regclass)")
    "nextval('events_global_position_seq')"
    >>> normalise_default("'0'::xid8") == normalise_default("0")
    True
    """
    if sql is None:
        return None
    s = re.sub(r"\s+", "", sql.lower())
    s = _CAST.sub("", s)
    s = _NEXTVAL.sub("nextval('", s)
    while s.startswith("(") and s.endswith(")"):
        s = s[1:-1]
    return _QUOTED_NUMBER.sub(r"\1", s)


def compare_server_default(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool:
    """Alembic ``compare_server_default`` hook: textual, never runs the expressions."""
    return normalise_default(inspected_default) != normalise_default(rendered_metadata_default)


def compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool | None:
    """Alembic ``compare_type`` hook: ``xid8`` equals ``xid8``; the rest as Alembic does."""
    if isinstance(metadata_type, XID8) or isinstance(inspected_type, XID8):
        return not (isinstance(metadata_type, XID8) and isinstance(inspected_type, XID8))
    return None


def autogenerate_options(connection: Connection | None = None) -> dict[str, Any]:
    """Everything ``context.configure`` needs for a clean autogenerate, as keywords.

    >>> context.configure(connection=conn, target_metadata=md,  # in an env.py only
    ...                   **autogenerate_options(conn))  # doctest: +SKIP
    """
    if connection is not None:
        register_xid8(connection.dialect)
    return {
        "include_name": include_name,
        "include_object": include_object,
        "compare_type": compare_type,
        "compare_server_default": compare_server_default,
    }
