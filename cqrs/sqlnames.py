"""Internal: the one place SQL text is assembled from names: identifiers quoted by the
dialect's identifier preparer, values rendered by SQLAlchemy, nothing else.

Statements whose shape SQLAlchemy expresses (``select``, ``insert().from_select``,
``postgresql.insert().on_conflict_do_update``, ``CreateSchema``, ...) are built with
those constructs. The rest, mostly DDL that PostgreSQL does not accept bind
parameters for (``ALTER TABLE ... RENAME``, ``ATTACH PARTITION``, ``LISTEN``), goes
through :func:`statement` (a ``text()`` for ``Connection.execute``) or
:func:`render` (a plain string for the driver). Their template is a constant with
``{placeholder}`` fields, and each field's value is either

* a ``str``: an identifier, always quoted through the dialect's preparer (a ``"``
  in it doubled), never spliced in as SQL; or
* an ``int``, ``date`` or ``datetime``: a literal rendered by SQLAlchemy's literal
  compiler (a naive ``datetime`` is refused: its meaning would depend on the
  session's time zone).

Anything else raises ``TypeError``: there is no way to splice free SQL text in.
``tests/unit/test_no_sql_from_strings.py`` checks that the package assembles SQL
text nowhere else.

A ``%`` in a name is kept as it is. The preparer doubles it for drivers with the
``pyformat`` parameter style, which is right for a compiled SQLAlchemy statement
but wrong before ``text()``, which doubles it again when compiled (a read-model
table named ``rm%sx`` became ``rm%%sx``), and wrong for the driver's own
``execute`` without parameters, which takes the text as it is::

    >>> from sqlalchemy.dialects import postgresql
    >>> pg = postgresql.dialect()
    >>> quote(pg, 'rm%sx'), quote(pg, 'events"; DROP TABLE streams; --')
    ('"rm%sx"', '"events""; DROP TABLE streams; --"')
    >>> render(pg, "ALTER TABLE {old} RENAME TO {new}", old="Orders", new="orders_old")
    'ALTER TABLE "Orders" RENAME TO orders_old'
    >>> render(pg, "SELECT {n}", n=3)
    'SELECT 3'
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, TextClause, literal, text
from sqlalchemy.dialects.postgresql import TIMESTAMP

Bind = Connection | Engine | Dialect
Part = str | int | dt.date | dt.datetime


def _dialect(bind: Bind) -> Dialect:
    return bind if isinstance(bind, Dialect) else bind.dialect


def quote(bind: Bind, name: str) -> str:
    """``name`` as an SQL identifier (quoted where it needs to be), ``%`` left single.

    >>> from sqlalchemy.dialects import postgresql
    >>> quote(postgresql.dialect(), "order_summary"), quote(postgresql.dialect(), "Order")
    ('order_summary', '"Order"')
    """
    if not isinstance(name, str):
        raise TypeError(f"an SQL identifier must be a str, got {type(name).__name__}")
    preparer = _dialect(bind).identifier_preparer
    quoted = preparer.quote(name)
    if "%" in name and preparer.quote_identifier("%").count("%") == 2:
        # This preparer doubles "%" for a pyformat driver; undo it (see the module doc).
        quoted = quoted.replace("%%", "%")
    return quoted


def _literal(bind: Bind, value: int | dt.date | dt.datetime) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise TypeError("a naive datetime has no fixed meaning in SQL; give it a tzinfo")
        expression: Any = literal(value, TIMESTAMP(timezone=True))
    else:
        expression = literal(value)
    compiled = expression.compile(dialect=_dialect(bind), compile_kwargs={"literal_binds": True})
    return str(compiled)


def _part(bind: Bind, value: object) -> str:
    if isinstance(value, str):
        return quote(bind, value)
    if isinstance(value, bool) or not isinstance(value, int | dt.date):
        raise TypeError(
            f"an SQL template field takes an identifier (str) or an int, date or datetime "
            f"literal, not {type(value).__name__}; bind other values as parameters"
        )
    return _literal(bind, value)


def render(bind: Bind, template: str, /, **parts: Part) -> str:
    """``template`` with each ``{field}`` replaced as the module doc says (plain SQL text).

    For the driver's own ``execute``/``copy``; use :func:`statement` with SQLAlchemy.
    """
    return template.format(**{field: _part(bind, value) for field, value in parts.items()})


def statement(bind: Bind, template: str, /, **parts: Part) -> TextClause:
    """:func:`render`'s text as a ``text()`` clause; ``:name`` parameters bind as usual.

    >>> from sqlalchemy.dialects import postgresql
    >>> stmt = statement(postgresql.dialect(), "SELECT count(*) FROM {t} WHERE a = :a", t="rm%sx")
    >>> print(stmt.compile(dialect=postgresql.dialect()))
    SELECT count(*) FROM "rm%%sx" WHERE a = %(a)s
    """
    return text(render(bind, template, **parts))
