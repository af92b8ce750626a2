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
* updates (which may carry SQL expressions such as ``Col.count + 1``) become
  ``UPDATE ... FROM jsonb_to_recordset(:rows)`` statements (``_UpdatePlan``):
  where every expression adds to its own exact-numeric column, one statement
  with each row's increments summed and its last plain values; otherwise one
  statement per "round" (the n-th write of each row goes in the n-th), which
  applies each row's writes in order. Expressions that read anything but the
  row itself (a sub-query), or updates that set a key column, go out as one
  pipelined ``executemany`` as before.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import functools
import operator
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
from sqlalchemy import (
    BindParameter,
    Column,
    Connection,
    Exists,
    Float,
    FromClause,
    Integer,
    Numeric,
    ScalarSelect,
    Select,
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
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.sql.visitors import iterate, replacement_traverse

from cqrs import jsontext
from cqrs.store import driver

Kind = Literal["upsert", "update", "delete"]


@attrs.define
class Write:
    """One row write: ``values`` are plain values, ``sql`` SQL expressions (updates only).

    Not frozen, though nothing changes one after it is made: a declarative rule makes
    one per event, and a frozen class's ``__init__`` costs about three times as much.
    """

    kind: Kind
    table: Table
    key: tuple[Any, ...]
    values: Mapping[str, Any]
    sql: tuple[tuple[str, ColumnElement[Any]], ...] = ()
    params: Mapping[str, Any] = attrs.field(factory=dict)
    # what shape() returns, when the maker knows it (a declarative rule: always the same)
    known_shape: tuple[Any, ...] | None = attrs.field(default=None, eq=False, repr=False)

    def shape(self) -> tuple[Any, ...]:
        if self.known_shape is not None:
            return self.known_shape
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
            rows = [w.values if type(w.values) is dict else dict(w.values) for w in chunk]
            statement = _upsert_statement(table, tuple(first.values))
        else:
            pk = [c.name for c in table.primary_key.columns]
            rows = [dict(zip(pk, w.key, strict=True)) for w in chunk]
            statement = _delete_statement(table)
        driver.execute(self.connection, statement, {"rows": _to_json(rows)})
        self.statements += 1

    def _update(self, table: Table, run: Sequence[Write]) -> None:
        first = run[0]
        plan = _update_plan(first, table) if len(run) > 1 else None
        if plan is not None:
            merged, rounds = plan.rounds(run)
            statement = plan.statement(merged)
            for rows in rounds:
                driver.execute(self.connection, statement, {"rows": _to_json(rows)})
                self.statements += 1
            return
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
def _upsert_statement(table: Table, names: tuple[str, ...]) -> UpdateBase:
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
def _delete_statement(table: Table) -> UpdateBase:
    """``DELETE FROM table USING jsonb_to_recordset(...) r WHERE pk = r.pk``."""
    pk = list(table.primary_key.columns)
    rows = _rows_source(pk)
    return delete(table).where(and_(*(c == rows.c[c.name] for c in pk)))


def cache_size() -> int:
    """How many built statements are kept (at most twice ``STATEMENT_CACHE_SIZE``)."""
    return _upsert_statement.cache_info().currsize + _delete_statement.cache_info().currsize


# -- set-based updates -------------------------------------------------------------------

_plans: dict[tuple[Any, ...], _UpdatePlan | None] = {}


def _update_plan(first: Write, table: Table) -> _UpdatePlan | None:
    """How a run of updates shaped like ``first`` goes out set-based into ``table``, or
    ``None`` for the row-by-row ``executemany`` (built once per shape and table)."""
    key = (id(table), first.shape())
    found = _plans.get(key, _UNKNOWN)
    if found is _UNKNOWN or (found is not None and found.table is not table):
        if len(_plans) >= STATEMENT_CACHE_SIZE:
            _plans.clear()
        found = _plans[key] = _UpdatePlan.build(first, table)
    return found  # type: ignore[no-any-return]


_UNKNOWN: Any = object()


def _exact_numeric(type_: Any) -> bool:
    """Whether sums in the column's type are exact (no float rounding)."""
    return isinstance(type_, Integer) or (
        isinstance(type_, Numeric) and not isinstance(type_, Float)
    )


def _fits(value: Any, type_: Any) -> bool:
    """Whether adding ``value`` to a column of ``type_`` in turn rounds nothing."""
    if value is None:
        return True
    if isinstance(type_, Integer):
        return type(value) is int
    if type(value) is int:
        return True
    if type(value) is not decimal.Decimal or not value.is_finite():
        return False
    scale = getattr(type_, "scale", None)
    if scale is None:
        return True
    # The number, not its spelling: 12.500 fits numeric(12, 2), 12.505 does not.
    try:
        return bool(value == value.quantize(_quantum(scale)))
    except decimal.InvalidOperation:  # more digits than the context's precision
        return False


@functools.lru_cache(maxsize=64)
def _quantum(scale: int) -> decimal.Decimal:
    """``Decimal("1E-scale")``: what ``quantize`` rounds to for ``scale`` decimal places."""
    return decimal.Decimal(1).scaleb(-scale)


@attrs.define(eq=False)
class _UpdatePlan:
    """A run of same-shape updates as ``UPDATE table SET ... FROM jsonb_to_recordset(:rows)``.

    ``increments`` maps columns set to ``column + delta`` (the delta a literal or an
    event value) to the delta's bind parameter: when every SQL expression is one of
    those, a row's writes in a run collapse into one (deltas summed, plain values of
    the last write), exact for integer and numeric columns when the deltas of a
    row have one sign (no intermediate overflow the sum would hide) and need no
    rounding. Otherwise the run goes out in rounds, each row once per round.
    """

    table: Table
    original: Table  # the table the expressions name (``table`` may be a rebuild's shadow)
    pk: tuple[str, ...]
    names: tuple[str, ...]
    sql: tuple[tuple[str, ColumnElement[Any]], ...]
    params: tuple[tuple[str, Any], ...]  # event-value bind parameters and their types
    increments: tuple[tuple[str, BindParameter[Any]], ...] | None
    _statements: dict[bool, UpdateBase] = attrs.field(factory=dict)

    @classmethod
    def build(cls, first: Write, table: Table) -> _UpdatePlan | None:
        pk = tuple(c.name for c in table.primary_key.columns)
        if not pk or any(n in pk for n in first.values) or any(n in pk for n, _ in first.sql):
            return None  # a write that moves a row: keep the statements in order
        params: dict[str, Any] = {}
        increments: list[tuple[str, BindParameter[Any]]] = []
        for name, expression in first.sql:
            for element in iterate(expression):
                if isinstance(element, BindParameter):
                    if element.callable is not None or isinstance(element.type, NullType):
                        return None
                    if element.key in first.params:
                        params[element.key] = element.type
                elif isinstance(element, Column):
                    if element.table is not first.table:
                        return None
                elif isinstance(element, (Select, ScalarSelect, Exists, FromClause)):
                    return None  # reads other rows: their order across keys could matter
            delta = _increment_of(name, expression, first.table)
            if delta is not None:
                increments.append((name, delta))
        additive = len(increments) == len(first.sql) and bool(first.sql)
        return cls(
            table, first.table, pk, tuple(first.values), first.sql, tuple(params.items()),
            tuple(increments) if additive else None,
        )  # fmt: skip

    def rounds(self, run: Sequence[Write]) -> tuple[bool, list[list[dict[str, Any]]]]:
        """Whether the increments were summed, and the rows of each statement: one
        statement when summing is exact, else the n-th write of every row in the n-th."""
        if self.increments is not None:
            merged = self._merged(run)
            if merged is not None:
                return True, [merged]
        rounds: list[list[dict[str, Any]]] = []
        seen: dict[Any, int] = {}
        for w in run:
            key = _hashable(w.key)
            n = seen.get(key, 0)
            seen[key] = n + 1
            if n == len(rounds):
                rounds.append([])
            row = {f"k_{i}": v for i, v in enumerate(w.key)}
            row.update({f"v_{name}": v for name, v in w.values.items()})
            row.update({f"x_{name}": w.params[name] for name, _ in self.params})
            rounds[n].append(row)
        return False, rounds

    def _merged(self, run: Sequence[Write]) -> list[dict[str, Any]] | None:
        assert self.increments is not None
        table = self.table
        increments = [
            (f"d_{name}", bind.key, bind.value, table.c[name].type)
            for name, bind in self.increments
        ]
        rows: dict[Any, dict[str, Any]] = {}
        for w in run:
            key = _hashable(w.key)
            row = rows.get(key)
            if row is None:
                row = rows[key] = {f"k_{i}": v for i, v in enumerate(w.key)}
                for d, *_ in increments:
                    row[d] = 0
            for name, v in w.values.items():
                row["v_" + name] = v
            params = w.params
            for d, bind, literal_value, type_ in increments:
                delta = params.get(bind, literal_value)
                if type(delta) is not int and not _fits(delta, type_):
                    return None
                total = row[d]
                if total is None or delta is None:
                    row[d] = None  # NULL + anything stays NULL
                elif (total > 0 > delta) or (total < 0 < delta):
                    return None  # mixed signs: the sum could hide an overflow in between
                else:
                    row[d] = total + delta
        return list(rows.values())

    def statement(self, merged: bool) -> UpdateBase:
        """The UPDATE for summed increments (``merged``) or for one round."""
        found = self._statements.get(merged)
        if found is None:
            found = self._statements[merged] = self._build_statement(merged)
        return found

    def _build_statement(self, merged: bool) -> UpdateBase:
        table = self.table
        pk = [table.c[n] for n in self.pk]
        columns: list[Column[Any]] = [Column(f"k_{i}", c.type) for i, c in enumerate(pk)] + [
            Column(f"v_{n}", table.c[n].type) for n in self.names
        ]
        if merged:
            assert self.increments is not None
            columns += [Column(f"d_{n}", table.c[n].type) for n, _ in self.increments]
        else:
            columns += [Column(f"x_{n}", t) for n, t in self.params]
        source = _rows_source_named(columns)
        assignments: dict[str, Any] = {n: source.c[f"v_{n}"] for n in self.names}
        if merged:
            assert self.increments is not None
            for n, _ in self.increments:
                assignments[n] = table.c[n] + source.c[f"d_{n}"]
        else:
            params = {n for n, _ in self.params}

            def replace(element: Any) -> Any:
                if isinstance(element, BindParameter) and element.key in params:
                    return source.c[f"x_{element.key}"]
                return None

            for n, expression in self.sql:
                bound = replacement_traverse(expression, {}, replace)  # type: ignore[call-overload]
                assignments[n] = retarget(bound, self.original, table)
        return (
            update(table)
            .where(and_(*(c == source.c[f"k_{i}"] for i, c in enumerate(pk))))
            .values(assignments)
        )


def _increment_of(
    name: str, expression: ColumnElement[Any], table: Table
) -> BindParameter[Any] | None:
    """The delta's bind parameter when ``expression`` is ``table.name + delta`` (either
    way round) on an exact-numeric column, else ``None``."""
    if not isinstance(expression, BinaryExpression) or expression.operator is not operator.add:
        return None
    left, right = expression.left, expression.right
    for col, delta in ((left, right), (right, left)):
        if (
            isinstance(col, Column)
            and col.table is table
            and col.name == name
            and _exact_numeric(col.type)
            and isinstance(delta, BindParameter)
        ):
            return delta
    return None


def _rows_source_named(columns: Sequence[Column[Any]]) -> TableValuedAlias:
    """``jsonb_to_recordset(CAST(:rows AS JSONB)) AS r(...)`` of free-standing columns."""
    rows = cast(bindparam("rows", type_=Text()), JSONB)
    typed = [column(c.name, c.type) for c in columns]
    return func.jsonb_to_recordset(rows).table_valued(*typed).render_derived("r", with_types=True)
