"""Public: ``Projection``, read models declared against your ORM classes.

A projection maps event types to row writes, declaratively or with a function;
the same definition runs inline (``apply_inline``, inside the writer's
transaction) or in the runner (``ProjectionRunner``), and a batch of events
becomes a few set-based statements either way::

    summary = Projection("order_summary", OrderSummary)
    summary.on(OrderPlaced).upsert(order_id=E.order_id, status="placed", total=E.total)
    summary.on(OrderCancelled).update(key=E.order_id, status="cancelled")
    summary.on(OrderPurged).delete(key=E.order_id)
    summary.on(ItemAdded).update(key=E.order_id, items=OrderSummary.items + 1)

    @summary.on(OrderShipped)
    def _(e: RecordedEvent[OrderShipped], ctx: ProjectionContext) -> None:
        ctx.update(OrderSummary, e.event.order_id, status="shipped")

Handlers of one event run in the order they were declared; events apply in
log order. ``into=`` on ``on`` writes a declarative rule into another model, so
one projection can feed several tables (a customer view fed by order and
payment streams).
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import attrs
from sqlalchemy import BindParameter, Connection, Table, bindparam, inspect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.visitors import replacement_traverse

from cqrs.errors import ProjectionError
from cqrs.events.model import Event, RecordedEvent
from cqrs.events.registry import EventRegistry, default_registry
from cqrs.projections.expr import Expr, _Const, _Field, _never_has, lift
from cqrs.projections.writes import BatchWriter, Kind, Write

EV = TypeVar("EV", bound=Event)

REBUILD_SUFFIX = "#rebuild"
"""A rebuild's checkpoint is ``<projection name>#rebuild``; no projection name ends so."""

Recorded = RecordedEvent[Event]
Model = type[Any] | Table
Handler = Callable[[Recorded, "ProjectionContext"], None]


def table_of(model: Model) -> Table:
    """The ``Table`` behind an ORM class (or the table itself)."""
    if isinstance(model, Table):
        return model
    try:
        table = inspect(model).local_table
    except Exception:
        raise ProjectionError(
            f"{model!r} is neither an ORM-mapped class nor a Table; "
            "pass your read-model class (a DeclarativeBase subclass)"
        ) from None
    if not isinstance(table, Table):
        raise ProjectionError(f"{model!r} is not mapped to a single table")
    return table


def _check_columns(table: Table, names: Iterable[str]) -> None:
    unknown = [n for n in names if n not in table.c]
    if unknown:
        raise ProjectionError(
            f"table {table.name!r} has no column(s) {unknown}; "
            f"its columns are {[c.name for c in table.c]}"
        )


def _as_key(table: Table, key: Any) -> tuple[Any, ...]:
    parts = key if isinstance(key, tuple) else (key,)
    width = len(table.primary_key.columns)
    if width == 0:
        raise ProjectionError(f"table {table.name!r} has no primary key; give it one")
    if len(parts) != width:
        raise ProjectionError(
            f"table {table.name!r} has a {width}-column primary key "
            f"{[c.name for c in table.primary_key.columns]}; pass a key of {width} value(s)"
        )
    return tuple(parts)


def _split(values: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    plain = {k: v for k, v in values.items() if not isinstance(v, ColumnElement)}
    sql = tuple((k, v) for k, v in values.items() if isinstance(v, ColumnElement))
    return plain, sql


def make_write(kind: Kind, table: Table, key: Any, values: Mapping[str, Any]) -> Write:
    """Validate and build one row write (used by rules and by ``ProjectionContext``)."""
    _check_columns(table, values)
    plain, sql = _split(values)
    if kind == "upsert":
        if sql:
            raise ProjectionError(
                f"upsert into {table.name!r}: SQL expressions {[k for k, _ in sql]} need an "
                "existing row; use .update(...) for them"
            )
        pk = [c.name for c in table.primary_key.columns]
        missing = [n for n in pk if n not in plain]
        if missing:
            raise ProjectionError(
                f"upsert into {table.name!r} gives no value for primary key column(s) "
                f"{missing}; map every primary key column"
            )
        return Write("upsert", table, tuple(plain[n] for n in pk), plain)
    return Write(kind, table, _as_key(table, key), plain, sql)


def _bind_event_values(
    sql: tuple[tuple[str, ColumnElement[Any]], ...],
) -> tuple[tuple[tuple[str, ColumnElement[Any]], ...], dict[str, Expr]]:
    """Turn ``E`` expressions inside SQL expressions into named bind parameters."""
    found: dict[str, Expr] = {}

    def replace(element: Any) -> Any:
        if isinstance(element, BindParameter) and isinstance(element.value, Expr):
            name = f"x_{len(found)}"
            found[name] = element.value
            return bindparam(name, type_=element.type)
        return None

    out = tuple((k, replacement_traverse(v, {}, replace)) for k, v in sql)  # type: ignore[call-overload]
    return out, found


_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})

_Read = tuple[tuple[Any, ...], dict[str, Any], Mapping[str, Any]]
"""What a rule reads of one event: the row's key, its plain values, the SQL parameters."""


@attrs.frozen
class _Rule:
    """A declarative write: expressions evaluated per event."""

    kind: Kind
    table: Table
    key: tuple[Expr, ...]
    values: Mapping[str, Expr]
    sql: tuple[tuple[str, ColumnElement[Any]], ...]
    params: Mapping[str, Expr]

    # Resolved once: this runs for every event of a batch.
    _pk: tuple[str, ...] = attrs.field(init=False)
    _value_getters: tuple[tuple[str, Callable[[Recorded], Any]], ...] = attrs.field(init=False)
    _param_getters: tuple[tuple[str, Callable[[Recorded], Any]], ...] = attrs.field(init=False)

    @_pk.default
    def _primary_key_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.primary_key.columns)

    @_value_getters.default
    def _values(self) -> tuple[tuple[str, Callable[[Recorded], Any]], ...]:
        return tuple((name, expr.evaluate) for name, expr in self.values.items())

    @_param_getters.default
    def _params(self) -> tuple[tuple[str, Callable[[Recorded], Any]], ...]:
        return tuple((name, expr.evaluate) for name, expr in self.params.items())

    # Per event class, a generated function reading the rule's key, values and
    # parameters in one go (``_reader``), or None where an expression needs the
    # general path.
    _readers: dict[type[Any], Callable[[Recorded], _Read] | None] = attrs.field(
        init=False, factory=dict
    )
    _shape: tuple[Any, ...] = attrs.field(init=False)

    @_shape.default
    def _write_shape(self) -> tuple[Any, ...]:
        return (self.kind, self.table, tuple(self.values), tuple((n, id(e)) for n, e in self.sql))

    def _reader(self, cls: type[Any]) -> Callable[[Recorded], _Read] | None:
        """``(key, {column: value}, {parameter: value})`` of an event of ``cls`` as the
        expressions give them: ``E.name`` read straight from the event's attrs field
        or, where the class never has that attribute, from the envelope (what
        ``E.name`` does after a failed lookup)."""
        fields = attrs.fields_dict(cls) if attrs.has(cls) else {}
        namespace: dict[str, Any] = {"NO_PARAMS": _NO_PARAMS}

        def source(expr: Expr, slot: str) -> str | None:
            if type(expr) is _Field:
                name = expr.name
                if not name.isidentifier() or keyword.iskeyword(name):
                    return None
                if name in fields:
                    return f"e.{name}"
                if _never_has(cls, name) and hasattr(RecordedEvent, name):
                    return f"r.{name}"
                return None
            namespace[slot] = expr.value if type(expr) is _Const else expr.evaluate
            return slot if type(expr) is _Const else f"{slot}(r)"

        values = [(n, source(x, f"v{i}")) for i, (n, x) in enumerate(self.values.items())]
        params = [(n, source(x, f"p{i}")) for i, (n, x) in enumerate(self.params.items())]
        key: list[str | None] = [f"v[{n!r}]" for n in self._pk]
        if self.kind != "upsert":
            key = [source(x, f"k{i}") for i, x in enumerate(self.key)]
        if any(code is None for _, code in values + params) or None in key:
            return None
        # The source holds names only as repr() literals and identifiers.
        body = ", ".join(f"{n!r}: {code}" for n, code in values)
        bound = ", ".join(f"{n!r}: {code}" for n, code in params)
        exec(
            f"def read(r):\n    e = r.event\n    v = {{{body}}}\n"
            f"    return ({''.join(f'{k}, ' for k in key)}), v, "
            f"{'{' + bound + '}' if params else 'NO_PARAMS'}",
            namespace,
        )
        return namespace["read"]  # type: ignore[no-any-return]

    def _read(self, recorded: Recorded) -> _Read:
        """What ``_reader`` gives, by evaluating each expression (the general path)."""
        plain = {name: get(recorded) for name, get in self._value_getters}
        # Most rules bind no event values inside SQL expressions: share one empty
        # mapping rather than allocate a dict per event (allocations feed the GC).
        params = (
            {name: get(recorded) for name, get in self._param_getters}
            if self._param_getters
            else _NO_PARAMS
        )
        if self.kind == "upsert":
            key = tuple([plain[n] for n in self._pk])
        else:
            key = tuple([e.evaluate(recorded) for e in self.key])
        return key, plain, params

    def __call__(self, recorded: Recorded, ctx: ProjectionContext) -> None:
        cls = type(recorded.event)
        try:
            read = self._readers[cls]
        except KeyError:
            read = self._readers[cls] = self._reader(cls)
        key, plain, params = self._read(recorded) if read is None else read(recorded)
        ctx.writer.add(Write(self.kind, self.table, key, plain, self.sql, params, self._shape))


class ProjectionContext:
    """What a function handler gets next to the event: row writes and the connection.

    ``upsert``/``update``/``delete`` join the batch's set-based statements;
    ``session`` and ``connection`` first flush everything queued so far, so a
    handler that queries sees the effects of earlier events.
    """

    def __init__(self, writer: BatchWriter, session: Session | None = None) -> None:
        self.writer = writer
        self._session = session

    def table(self, model: Model) -> Table:
        """The table a model's rows go to (a shadow copy during a rebuild)."""
        table = table_of(model)
        return self.writer.table_map.get(table, table)

    def upsert(self, model: Model, **values: Any) -> None:
        """Insert the row, or update it when its primary key exists."""
        self.writer.add(make_write("upsert", table_of(model), None, values))

    def update(self, model: Model, key: Any, **values: Any) -> None:
        """Update the row with primary key ``key`` (a tuple for composite keys).

        Values may be SQL expressions on the row, e.g. ``Summary.count + 1``.
        """
        self.writer.add(make_write("update", table_of(model), key, values))

    def delete(self, model: Model, key: Any) -> None:
        """Delete the row with primary key ``key``."""
        self.writer.add(make_write("delete", table_of(model), key, {}))

    def flush(self) -> None:
        """Send queued writes (and the ORM session's pending changes) to the database."""
        if self._session is not None:
            self._session.flush()
        self.writer.flush()

    @property
    def connection(self) -> Connection:
        """The batch's connection, with every queued write already executed."""
        self.flush()
        return self.writer.connection

    @property
    def session(self) -> Session:
        """An ORM session in the batch's transaction (not redirected by rebuilds)."""
        self.flush()
        if self._session is None:
            # "rollback_only": closing the session never rolls back the batch's work, even
            # inside the savepoint of an event applied alone (failure policy, dead letters)
            self._session = Session(
                bind=self.writer.connection, autoflush=True, join_transaction_mode="rollback_only"
            )
        return self._session


class On(Generic[EV]):
    """The handlers of some event types in one projection (returned by ``Projection.on``)."""

    def __init__(self, projection: Projection, types: tuple[type[EV], ...], into: Model | None):
        self.projection = projection
        self.types = types
        self.into = into

    def _table(self) -> Table:
        if self.into is not None:
            return table_of(self.into)
        if not self.projection.models:
            raise ProjectionError(
                f"projection {self.projection.name!r} has no model: pass one to "
                "Projection(name, Model) or use .on(Event, into=Model)"
            )
        return table_of(self.projection.models[0])

    def _rule(self, kind: Kind, key: Any, values: Mapping[str, Any]) -> On[EV]:
        table = self._table()
        _check_columns(table, values)
        plain, sql = _split(values)
        if kind == "upsert":
            make_write("upsert", table, None, values)  # validates the key and the values
            key_exprs: tuple[Expr, ...] = ()
        else:
            key_exprs = tuple(lift(k) for k in _as_key(table, key))
        bound, params = _bind_event_values(sql)
        values_ = {k: lift(v) for k, v in plain.items()}
        rule = _Rule(kind, table, key_exprs, values_, bound, params)
        self.projection._add(self.types, rule)
        return self

    def upsert(self, **values: Any) -> On[EV]:
        """Insert or update a row; every primary key column must be mapped."""
        return self._rule("upsert", None, values)

    def update(self, key: Any, **values: Any) -> On[EV]:
        """Update the row with primary key ``key``; values may be SQL expressions."""
        return self._rule("update", key, values)

    def delete(self, key: Any) -> On[EV]:
        """Delete the row with primary key ``key``."""
        return self._rule("delete", key, {})

    def __call__(
        self, fn: Callable[[RecordedEvent[EV], ProjectionContext], None]
    ) -> Callable[[RecordedEvent[EV], ProjectionContext], None]:
        """Register ``fn(recorded_event, ctx)`` as a handler (the function form)."""
        self.projection._add(self.types, fn)  # type: ignore[arg-type]
        return fn


@attrs.frozen
class FailurePolicy:
    """What the runner does when applying an event fails.

    It retries the batch ``retries`` times, sleeping ``backoff`` seconds doubled
    each time up to ``max_backoff``; then it parks the failing event and the
    later events of its stream in ``dead_letters`` and goes on with the others.
    """

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0


class Projection:
    """A named read model: event handlers plus the tables they write.

    ``shards`` splits the runner's work by hash of stream id; ``batch_size``
    caps the events one runner transaction applies (it reads past events of
    other types or shards, and its checkpoint moves past them too);
    ``policy`` is the failure policy. ``appends`` says whether its handlers
    append events (dispatch commands) in the batch's transaction: a runner
    batch of a projection that does not (the default) is not waited for by
    other readers of the log, and an append in it raises
    ``AppendInReadModelBatch`` (``ProcessManager`` appends; see "The read
    horizon" in docs/architecture.md).
    """

    def __init__(
        self,
        name: str,
        *models: Model,
        shards: int = 1,
        batch_size: int = 500,
        policy: FailurePolicy | None = None,
        registry: EventRegistry | None = None,
        appends: bool = False,
    ) -> None:
        if not name or not isinstance(name, str) or len(name) > 100:
            raise ProjectionError(f"projection name must be a 1-100 character string: {name!r}")
        if name.endswith(REBUILD_SUFFIX):
            raise ProjectionError(
                f"projection name {name!r} ends with {REBUILD_SUFFIX!r}, which names the "
                "checkpoint of a rebuild in progress; choose another name"
            )
        if shards < 1 or batch_size < 1:
            raise ProjectionError(
                f"projection {name!r}: shards and batch_size must be >= 1 "
                f"(got {shards}, {batch_size})"
            )
        self.name = name
        self.models = models
        self.shards = shards
        self.batch_size = batch_size
        self.policy = policy or FailurePolicy()
        self.registry = registry or default_registry
        self.appends = bool(appends)
        self._handlers: dict[type[Event], list[Handler]] = {}
        self._tables: list[Table] = [table_of(m) for m in models]
        self._types: tuple[list[str] | None] | None = None
        self._dispatch: dict[type[Event], list[Handler]] = {}

    def __repr__(self) -> str:
        return f"Projection({self.name!r})"

    def on(self, *types: type[EV], into: Model | None = None) -> On[EV]:
        """Declare what ``types`` do to the read model (``.upsert``, ``.update``, ... or ``@``)."""
        if not types:
            raise ProjectionError(f"projection {self.name!r}: on() needs at least one event type")
        for t in types:
            if not (isinstance(t, type) and issubclass(t, Event)):
                raise ProjectionError(f"projection {self.name!r}: on({t!r}) takes @event classes")
        if into is not None and table_of(into) not in self._tables:
            self._tables.append(table_of(into))
        return On(self, types, into)

    def _add(self, types: Sequence[type[Event]], handler: Handler) -> None:
        self._types = None
        self._dispatch.clear()
        for t in types:
            self._handlers.setdefault(t, []).append(handler)
        if isinstance(handler, _Rule) and handler.table not in self._tables:
            self._tables.append(handler.table)

    @property
    def tables(self) -> tuple[Table, ...]:
        """Every table this projection writes (rebuild copies these)."""
        return tuple(self._tables)

    def event_types(self) -> list[str] | None:
        """Stored type names this projection reads (aliases included); ``None`` = all."""
        if self._types is None:
            self._types = (self._event_types(),)
        return self._types[0]

    def _event_types(self) -> list[str] | None:
        if Event in self._handlers:
            return None
        names = set()
        for name in self.registry.names():
            cls = self.registry.resolve(name)
            if cls is not None and any(issubclass(cls, t) for t in self._handlers):
                names.add(name)
        for t in self._handlers:
            names.add(t.event_type)
        return sorted(names)

    def handlers_for(self, cls: type[Event]) -> list[Handler]:
        """The handlers an event of class ``cls`` runs, in order (base-class ones included)."""
        found = self._dispatch.get(cls)
        if found is None:
            found = []
            for base in cls.__mro__:
                found.extend(self._handlers.get(base, ()))
            self._dispatch[cls] = found
        return found

    def apply(
        self,
        connection: Connection,
        events: Sequence[Recorded],
        *,
        session: Session | None = None,
        table_map: Mapping[Table, Table] | None = None,
    ) -> int:
        """Apply ``events`` (log order) on ``connection``; returns the statements sent."""
        writer = BatchWriter(connection, table_map)
        ctx = ProjectionContext(writer, session)
        try:
            for recorded in events:
                for handler in self.handlers_for(type(recorded.event)):
                    handler(recorded, ctx)
            ctx.flush()
        finally:
            if session is None and ctx._session is not None:
                ctx._session.close()
        return writer.statements

    def apply_inline(self, session: Session, events: Sequence[Recorded]) -> None:
        """The :class:`~cqrs.commands.inline.InlineProjection` entry: same transaction."""
        session.flush()
        self.apply(session.connection(), events, session=session)
