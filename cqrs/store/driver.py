"""Internal: run the store's own statements on the psycopg connection under SQLAlchemy.

``Connection.execute`` costs about 80 µs of client CPU per statement on top
of psycopg (cache key, execution context, result metadata built from
``cursor.description``); on a single-event append that is a fifth of the
client's work, and with four writers on two cores it is what the throughput
loses against hand-written psycopg. The store's statements are constant
texts with untyped results, so none of that work changes what they do.

``rows`` sends such a statement straight to the DBAPI connection, inside the
transaction SQLAlchemy holds (it begins one first, as ``execute`` would,
except for a read under READ COMMITTED, which runs on its own: ``standalone``),
and keeps ``execute``'s contract: errors come as SQLAlchemy's ``DBAPIError``
subclasses, and a lost connection is invalidated. Whenever something could
tell the difference it takes the ordinary path: an engine or connection with
event listeners or SQL echo, a transaction that must be rolled back first, an
async or non-psycopg driver. ``execute`` does the same for a statement run for
its effect, and returns its row count: a projection batch's checkpoint
compare-and-set and its set-based writes, Core statements that qualify when
psycopg can take their parameters as given (``_text_of``).

    >>> from cqrs.store import EventStore, sql
    >>> placed = [OrderPlaced("order-1", "c-1", Decimal(n)) for n in (1, 2, 3)]
    >>> EventStore().append(conn, "order-1", placed).version
    3
    >>> rows(conn, sql.STREAM_INFO, {"sid": "order-1"})
    [('order-1', 'order', 3, datetime.datetime(...), False)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg.types.numeric import Int8BinaryLoader, IntLoader
from sqlalchemy import Connection, Dialect, TextClause, TextualSelect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase

from cqrs.store import timestamps

Statement = TextClause | TextualSelect | UpdateBase

# statement -> its text and, for a Core statement, the parameter names it takes as is
_texts: dict[Statement, tuple[str, frozenset[str] | None] | None] = {}
_MAX_TEXTS = 1024  # a rebuild's shadow tables bring new statements: keep the cache bounded


def rows(
    conn: Connection,
    statement: Statement,
    params: dict[str, Any],
    *,
    binary: bool = False,
    prepare: bool | None = None,
    read_only: bool = False,
) -> list[tuple[Any, ...]]:
    """``statement``'s result rows as tuples, executed in ``conn``'s transaction.

    ``binary`` asks for results in PostgreSQL's binary format, for a statement
    whose every column psycopg loads from it to the values the text format gives
    (integers, booleans, text, ``uuid``, ``timestamptz``): the server sends a
    timestamp as 8 bytes instead of formatting it, and the client skips parsing.
    ``prepare`` is psycopg's: ``None`` prepares the statement from its fifth use
    on the connection, ``False`` never (it is planned for its parameters' values
    every time; the SQLAlchemy path keeps psycopg's default).

    ``read_only`` says the statement writes nothing. Outside a transaction, on
    a connection whose transactions are READ COMMITTED, it then runs on its own,
    as on an autocommit connection (``standalone``), instead of beginning a
    transaction that the caller's ``close`` would roll back.
    """
    cursor = _run(conn, statement, params, binary, prepare, read_only)
    if cursor is None:
        found = [tuple(row) for row in conn.execute(statement, params)]
        return timestamps.as_direct(found, conn.connection.driver_connection)
    found = cursor.fetchall()
    if len(found) > _KEEP_ROWS:  # the cursor holds its last result: keep no big one alive
        cursor.close()
    return found


def execute(conn: Connection, statement: Statement, params: dict[str, Any]) -> int:
    """Execute ``statement`` for its effect in ``conn``'s transaction; its row count.

    A SQLAlchemy Core statement (a projection's set-based upsert) goes the
    direct way too when its only bound values are ``params`` and none of their
    types converts values on the way in; otherwise it takes ``execute``.
    """
    cursor = _run(conn, statement, params, False)
    if cursor is None:
        return int(conn.execute(statement, params).rowcount)
    return cursor.rowcount


def _run(
    conn: Connection,
    statement: Statement,
    params: dict[str, Any],
    binary: bool,
    prepare: bool | None = None,
    read_only: bool = False,
) -> psycopg.Cursor[Any] | None:
    """The cursor that executed ``statement``, or ``None`` where ``execute`` must run it."""
    if not _direct(conn):
        return None
    try:
        found = _texts[statement]
    except KeyError:
        if len(_texts) >= _MAX_TEXTS:
            _texts.clear()
        found = _texts[statement] = _text_of(statement, conn.dialect)
    if found is None:
        return None
    text, names = found
    if names is not None and params.keys() != names:
        return None
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    alone = False
    if not conn.in_transaction():
        alone = read_only and standalone(conn, driver)
        if not alone:
            conn.begin()  # what execute's autobegin does: commit() must see the work
    cursor = _cursor(driver)
    if alone:
        driver.autocommit = True
    try:
        cursor.execute(text, params, binary=binary, prepare=prepare)
    except psycopg.Error as exc:
        lost = conn.dialect.is_disconnect(cast(Any, exc), conn.connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            text, params, exc, psycopg.Error, connection_invalidated=lost, dialect=conn.dialect
        ) from exc
    finally:
        if alone:
            _end_standalone(conn, driver)
    return cursor


def _text_of(statement: Statement, dialect: Dialect) -> tuple[str, frozenset[str] | None] | None:
    """The SQL text psycopg can run with the caller's parameters as they are, or ``None``.

    The store's constant texts always qualify. A Core statement qualifies when
    every parameter is the caller's to give (no value of its own), bound plainly
    (no expanding ``IN``, no rendering at execution) with a type that leaves
    values unchanged; its parameter names come along, and a call with other
    names takes ``execute``.
    """
    compiled = statement.compile(dialect=dialect)
    if isinstance(statement, TextClause | TextualSelect):
        return str(compiled), None
    if compiled.positional or getattr(compiled, "escaped_bind_names", True):
        return None
    for bind in compiled.binds.values():
        if bind.expanding or bind.literal_execute or bind.value is not None:
            return None
        if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            return None
    return str(compiled), frozenset(compiled.binds)


IDLE = psycopg.pq.TransactionStatus.IDLE


def standalone(conn: Connection, driver: psycopg.Connection[Any]) -> bool:
    """Whether a read outside a transaction on ``conn`` can run on its own (no ``BEGIN``).

    A transaction begun for one read and rolled back when the caller closes the
    connection costs two round trips more than the read, and psycopg forgets
    its prepared statements at every ``ROLLBACK``: the store's statements were
    planned afresh for every such read (``read_stream`` in ``engine.connect()``
    ran at 40 % of the rate it reaches on its own; docs/guides/event-store.md).
    Under READ COMMITTED each statement has a snapshot of its own either way,
    so nothing the caller reads next can tell. Under REPEATABLE READ or
    SERIALIZABLE the caller's next statements share the read's snapshot, so
    the read begins the transaction as before. Where psycopg leaves the level
    to the server, SQLAlchemy's reading of the server's default decides.
    """
    if driver.autocommit or driver.info.transaction_status != IDLE:
        return False
    level = driver.isolation_level
    if level is None:
        return conn.dialect.default_isolation_level == "READ COMMITTED"
    return level == psycopg.IsolationLevel.READ_COMMITTED


def _end_standalone(conn: Connection, driver: psycopg.Connection[Any]) -> None:
    """Turn autocommit back off after a standalone read; a connection that is not idle
    then (an interrupted read, a lost server) is invalidated, never handed back in
    autocommit."""
    try:
        driver.autocommit = False
    except psycopg.Error:
        conn.invalidate()


# One cursor per connection, kept on the connection (a cursor costs about 40,000
# instructions to make, a third of a prepared statement's client work). A cursor
# whose result is big is closed after it, and the next call makes a new one; so
# does a change of the session's time zone or date style, which decide the
# cursor's timestamp loaders (``cqrs.store.timestamps``).
_KEEP_ROWS = 1000
_ATTR = "_cqrs_cursor"


def _cursor(driver: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    settings = timestamps.session_clock(driver)
    held: tuple[psycopg.Cursor[Any], object] | None = getattr(driver, _ATTR, None)
    if held is not None and held[1] == settings and not held[0].closed:
        return held[0]
    cursor = driver.cursor()
    _load_xid8_as_int(cursor)
    timestamps.load_in_utc(cursor)
    setattr(driver, _ATTR, (cursor, settings))
    return cursor


_XID8 = psycopg.postgres.types["xid8"].oid


def _load_xid8_as_int(cursor: psycopg.Cursor[Any]) -> None:
    """``xid8`` (an event's transaction id) as an ``int`` on the store's cursor.

    psycopg has no loader for it: text gives a ``str``, binary ``bytes``. Its
    binary form is an unsigned 64-bit integer, an ``int8``'s for every id a
    server hands out (an epoch of 32 bits and an id of 32), so psycopg's own
    integer loaders read it without a cast to text on the server or ``int()``
    on the client. Not where the application registered one of its own.
    """
    for loader in (IntLoader, Int8BinaryLoader):
        if cursor.adapters.get_loader(_XID8, loader.format) is None:
            cursor.adapters.register_loader(_XID8, loader)


def _direct(conn: Connection) -> bool:
    """Whether nothing could tell a driver-level execute from ``Connection.execute``."""
    dialect = conn.dialect
    if dialect.driver != "psycopg" or dialect.is_async or dialect.paramstyle != "pyformat":
        return False
    # Private flags, read defensively: if SQLAlchemy renames them, the ordinary path runs.
    if getattr(conn, "_has_events", True) or getattr(conn.engine, "_has_events", True):
        return False
    if getattr(conn, "_echo", True) or conn.invalidated or conn.closed:
        return False
    transaction, nested = conn.get_transaction(), conn.get_nested_transaction()
    if transaction is not None and not transaction.is_active:
        return False  # execute raises PendingRollbackError here; let it
    return nested is None or nested.is_active


def timestamptz_parser(conn: Connection) -> Callable[[str], datetime]:
    """Turns a ``timestamptz`` selected as text on ``conn`` into the ``datetime`` that
    selecting it through ``rows`` gives: psycopg's own loader, in the session's
    time zone as it is now (kept: the parser works after the connection is gone)."""
    context = conn.connection.driver_connection
    assert isinstance(context, psycopg.Connection | psycopg.AsyncConnection)
    loader = timestamps.text_loader(context)

    def parse(value: str) -> datetime:
        return cast(datetime, loader.load(value.encode()))

    return parse


@contextmanager
def atomic(conn: Connection) -> Iterator[None]:
    """Several statements as one transaction, also on a connection in autocommit.

    In a transaction (``engine.begin()``, a ``Session``) this adds nothing. On a
    connection with ``isolation_level="AUTOCOMMIT"`` every statement commits on
    its own, which suits a one-statement append (one round trip, as a
    hand-written autocommit ``INSERT``) but not a step of several statements
    (a stream lock then a write, an import's ``INSERT`` then ``COPY``): those
    run inside an explicit ``BEGIN`` ... ``COMMIT`` here, and a failure rolls
    back all of it.
    """
    if not getattr(conn.connection.dbapi_connection, "autocommit", False) or _in_block(conn):
        yield
        return
    conn.exec_driver_sql("BEGIN")
    try:
        yield
    except BaseException:
        if not conn.invalidated and not conn.closed:
            conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


def _in_block(conn: Connection) -> bool:
    """Whether the server connection is inside a transaction block already (``atomic`` nests)."""
    info = getattr(conn.connection.driver_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return status is not None and status != IDLE
