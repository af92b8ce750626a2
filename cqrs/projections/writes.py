"""Internal: turn a batch's row writes into a few set-based statements.

Handlers do not talk to the database row by row: they queue ``Write`` values
(upsert, update or delete of one row). ``BatchWriter.flush`` groups
*consecutive* writes of the same shape into one statement:

* upserts become one ``INSERT ... SELECT FROM jsonb_to_recordset(:rows)
  ON CONFLICT (pk) DO UPDATE`` per run (``postgresql.insert().from_select()``
  with ``on_conflict_do_update``); when a key repeats inside a run only
  its last write is kept: upserts of one shape set the same columns, so the
  last one decides the row exactly as applying each in turn would;
* deletes become one ``DELETE ... USING jsonb_to_recordset(:rows)``;
* updates (which may carry SQL expressions such as ``Col.count + 1``) go out
  as one pipelined ``executemany``, which keeps per-row order by construction.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import functools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
from sqlalchemy import (
    Column,
    Connection,
    Executable,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    column,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.sql.visitors import replacement_traverse

from cqrs import jsontext

Kind = Literal["upsert", "update", "delete"]


@attrs.frozen
class Write:
    """One row write: ``values`` are plain values, ``sql`` SQL expressions (updates only)."""

    kind: Kind
    table: Table
    key: tuple[Any, ...]
    values: Mapping[str, Any]
    sql: tuple[tuple[str, ColumnElement[Any]], ...] = ()
    params: Mapping[str, Any] = attrs.field(factory=dict)

    def shape(self) -> tuple[Any, ...]:
        return (self.kind, self.table, tuple(self.values), tuple((n, id(e)) for n, e in self.sql))


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds()} seconds"
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot pass {type(value).__name__} to a read-model column")


_to_json = jsontext.encoder(default=_json_default)


def retarget(expression: Any, original: Table, table: Table) -> Any:
    """``expression`` with the columns of ``original`` replaced by those of ``table``."""
    if table is original:
        return expression

    def replace(element: Any) -> Any:
        owner = getattr(element, "table", None)
        same = owner is original or getattr(owner, "fullname", None) == original.fullname
        if isinstance(element, Column) and owner is not None and same:
            return table.c[element.name]
        return None

    return replacement_traverse(expression, {}, replace)  # type: ignore[call-overload]


def _hashable(key: tuple[Any, ...]) -> Any:
    try:
        hash(key)
    except TypeError:
        return repr(key)
    return key


class BatchWriter:
    """Collects writes and flushes them as set-based statements on ``connection``.

    ``table_map`` redirects tables (a rebuild writes into shadow copies).
    """

    def __init__(self, connection: Connection, table_map: Mapping[Table, Table] | None = None):
        self.connection = connection
        self.table_map = dict(table_map or {})
        self.pending: list[Write] = []
        self.statements = 0

    def add(self, write: Write) -> None:
        self.pending.append(write)

    def flush(self) -> None:
        """Execute every pending write, in order, in as few statements as the order allows."""
        pending, self.pending = self.pending, []
        run: list[Write] = []
        shape: tuple[Any, ...] = ()
        for write in pending:
            this = write.shape()
            if run and this != shape:
                self._execute(run)
                run = []
            shape = this
            run.append(write)
        if run:
            self._execute(run)

    # -- runs ------------------------------------------------------------------

    def _execute(self, run: Sequence[Write]) -> None:
        first = run[0]
        table = self.table_map.get(first.table, first.table)
        if first.kind == "update":
            self._update(table, run)
            return
        if first.kind == "upsert":
            # Consecutive upserts of one shape set the same columns from EXCLUDED, so
            # the last one per key decides the row: keep it (one statement, no
            # "cannot affect row a second time").
            last: dict[Any, Write] = {}
            for write in run:
                key = _hashable(write.key)
                last.pop(key, None)
                last[key] = write
            self._set_based(table, list(last.values()))
        else:
            self._set_based(table, run)

    def _set_based(self, table: Table, chunk: Sequence[Write]) -> None:
        first = chunk[0]
        if first.kind == "upsert":
            rows = [dict(w.values) for w in chunk]
            statement = _upsert_statement(table, tuple(first.values))
        else:
            pk = [c.name for c in table.primary_key.columns]
            rows = [dict(zip(pk, w.key, strict=True)) for w in chunk]
            statement = _delete_statement(table)
        self.connection.execute(statement, {"rows": _to_json(rows)})
        self.statements += 1

    def _update(self, table: Table, run: Sequence[Write]) -> None:
        first = run[0]
        pk = list(table.primary_key.columns)
        assignments: dict[str, Any] = {name: bindparam(f"v_{name}") for name in first.values}
        for name, expression in first.sql:
            assignments[name] = retarget(expression, first.table, table)
        statement = (
            update(table)
            .where(and_(*(c == bindparam(f"k_{i}") for i, c in enumerate(pk))))
            .values(assignments)
        )
        params = [
            {
                **{f"k_{i}": value for i, value in enumerate(w.key)},
                **{f"v_{name}": value for name, value in w.values.items()},
                **w.params,
            }
            for w in run
        ]
        self.connection.execute(statement, params)
        self.statements += 1


STATEMENT_CACHE_SIZE = 512
"""Upsert and delete statements kept built, least recently used dropped first: a
rebuild's shadow tables are new ``Table`` objects each time, so a plain dict grew
with every rebuild. SQLAlchemy compiles each statement once per engine (its own
bounded compiled cache) and reuses it while the statement object is kept here."""


def _rows_source(columns: Sequence[Column[Any]]) -> TableValuedAlias:
    """``jsonb_to_recordset(CAST(:rows AS JSONB)) AS r(<column> <type>, ...)``."""
    rows = cast(bindparam("rows", type_=Text()), JSONB)
    typed = [column(c.name, c.type) for c in columns]
    return func.jsonb_to_recordset(rows).table_valued(*typed).render_derived("r", with_types=True)


def _scalar_defaults(table: Table, names: tuple[str, ...]) -> dict[str, Any]:
    """Python-side scalar ``default=`` values of the columns an upsert does not set."""
    found: dict[str, Any] = {}
    for c in table.c:
        default = c.default
        if c.name in names or default is None or not getattr(default, "is_scalar", False):
            continue
        found[c.name] = getattr(default, "arg", None)
    return found


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _upsert_statement(table: Table, names: tuple[str, ...]) -> Executable:
    """The upsert of a run setting ``names``: ``INSERT ... SELECT ... ON CONFLICT``.

    Columns the mapping leaves out get their Python-side scalar ``default=`` on
    insert (server defaults apply by themselves) and keep their value on update.
    """
    pk = [c.name for c in table.primary_key.columns]
    missing = [name for name in pk if name not in names]
    if missing:
        from cqrs.errors import ProjectionError

        raise ProjectionError(
            f"upsert into {table.name!r} gives no value for primary key column(s) {missing}; "
            "map every primary key column in .upsert(...)"
        )
    rows = _rows_source([table.c[name] for name in names])
    defaults = _scalar_defaults(table, names)
    values = [rows.c[name] for name in names]
    values += [literal(value, table.c[name].type) for name, value in defaults.items()]
    insert = postgresql.insert(table).from_select(
        [*names, *defaults], select(*values), include_defaults=False
    )
    rest = [name for name in names if name not in pk]
    if not rest:
        return insert.on_conflict_do_nothing(index_elements=pk)
    return insert.on_conflict_do_update(
        index_elements=pk, set_={name: insert.excluded[name] for name in rest}
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _delete_statement(table: Table) -> Executable:
    """``DELETE FROM table USING jsonb_to_recordset(...) r WHERE pk = r.pk``."""
    pk = list(table.primary_key.columns)
    rows = _rows_source(pk)
    return delete(table).where(and_(*(c == rows.c[c.name] for c in pk)))


def cache_size() -> int:
    """How many built statements are kept (at most twice ``STATEMENT_CACHE_SIZE``)."""
    return _upsert_statement.cache_info().currsize + _delete_statement.cache_info().currsize
