"""Internal: ``timestamptz`` values of a UTC session, loaded without a conversion each.

psycopg hands out every ``timestamptz`` in the session's time zone, calling
``datetime.astimezone`` on each value. When the server's ``TimeZone`` is
spelled ``UTC`` it uses ``datetime.timezone.utc`` and the call costs nothing,
but for any other spelling of UTC (``Etc/UTC``, the default of many installs,
and of this project's embedded server) it converts into
``ZoneInfo('Etc/UTC')``: about 3,200 instructions an event (callgrind), 7 %
of a ``read_all`` page's client work, for the same instant at the same offset.

In a session whose zone is one of the names of UTC (``UTC_NAMES``), the
store's own statements (``cqrs.store.driver``) load ``timestamptz`` with
psycopg's own loaders made without a connection, which work in UTC (their
zone comes from the connection, and psycopg takes UTC without one; pinned by
``tests/integration/test_store_timestamps.py``): their values carry
``datetime.timezone.utc``, as in a session spelled ``UTC``. Every other zone
keeps psycopg's loaders, so ``recorded_at`` is in the session's zone as before.
The instants, offsets, ``isoformat()`` and equality are the same either way;
only the ``tzinfo`` object differs from what a plain query on an ``Etc/UTC``
session gives.

    >>> is_utc(b"Etc/UTC"), is_utc(b"UTC"), is_utc(b"Asia/Kathmandu"), is_utc(None)
    (True, True, False, False)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, cast

import psycopg
from psycopg.abc import Loader
from psycopg.pq import Format

# Zone names whose clock is UTC and that call themselves UTC (``tzname()``);
# GMT and its aliases are left out: their ``tzname()`` is "GMT".
UTC_NAMES = frozenset({b"UTC", b"Etc/UTC", b"Universal", b"Etc/Universal", b"Zulu", b"Etc/Zulu"})

_TIMESTAMPTZ = psycopg.postgres.types["timestamptz"].oid


def is_utc(zone: bytes | None) -> bool:
    """Whether a session's ``TimeZone`` (as libpq reports it) is a name of UTC."""
    return zone in UTC_NAMES


class _WithoutConnection:
    """A loader "class" that makes psycopg's own loader for its format, without a
    connection: psycopg's transformer instantiates the registered class with
    ``(oid, context)``, and ``__new__`` hands back the (C-accelerated) loader
    built with ``context=None``, which loads into UTC."""

    format: ClassVar[Format]

    def __new__(cls, oid: int, context: Any = None) -> Any:
        made = psycopg.adapters.get_loader(oid, cls.format)
        assert made is not None  # psycopg registers timestamptz loaders globally
        return made(oid, None)


class _Binary(_WithoutConnection):
    format = Format.BINARY


class _Text(_WithoutConnection):
    format = Format.TEXT


def session_clock(
    connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
) -> tuple[bytes | None, bytes | None]:
    """The session's ``TimeZone`` and ``DateStyle``: what ``load_in_utc`` decides by
    (a cursor set up under other values is made again)."""
    pgconn = connection.pgconn
    return pgconn.parameter_status(b"TimeZone"), pgconn.parameter_status(b"DateStyle")


def _replaced(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> list[Format]:
    """The formats whose ``timestamptz`` loader the store replaces on ``connection``:
    none outside a UTC session; only psycopg's own loaders (one the application
    registered stays); the text one only where the session prints dates as ISO
    (psycopg's connection-less text loader assumes it)."""
    zone, style = session_clock(connection)
    if not is_utc(zone):
        return []
    iso = (style or b"").startswith(b"ISO")
    return [
        fmt
        for fmt in ((Format.BINARY, Format.TEXT) if iso else (Format.BINARY,))
        if connection.adapters.get_loader(_TIMESTAMPTZ, fmt)
        is psycopg.adapters.get_loader(_TIMESTAMPTZ, fmt)
    ]


def load_in_utc(cursor: psycopg.Cursor[Any]) -> None:
    """Register the connection-less ``timestamptz`` loaders on ``cursor``'s own
    adapters (not the connection's) where ``_replaced`` says so."""
    for fmt in _replaced(cursor.connection):
        replacement = _Binary if fmt == Format.BINARY else _Text
        cursor.adapters.register_loader(_TIMESTAMPTZ, cast(type[Loader], replacement))


def as_direct(rows: list[tuple[Any, ...]], connection: object) -> list[tuple[Any, ...]]:
    """``rows`` that ``Connection.execute`` gave (an engine with event listeners or
    echo), with their datetimes as the cursor of ``load_in_utc`` would give them:
    in a UTC session, an aware value at offset zero carries ``timezone.utc``."""
    if not isinstance(connection, psycopg.Connection) or not _replaced(connection):
        return rows
    return [tuple(_in_utc(value) for value in row) for row in rows]


def _in_utc(value: Any) -> Any:
    if type(value) is datetime and value.tzinfo is not None and not value.utcoffset():
        return value.replace(tzinfo=UTC)
    return value


def text_loader(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> Loader:
    """The text ``timestamptz`` loader the store's statements use on ``connection``."""
    load = connection.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)
    assert load is not None  # psycopg registers one on every connection
    return load(_TIMESTAMPTZ, None if Format.TEXT in _replaced(connection) else connection)
