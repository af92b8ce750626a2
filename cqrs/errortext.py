"""Internal: how the toolkit writes an error down (dead letters, checkpoints, headers, logs).

``describe`` names the exception's class and message; ``clip`` cuts the text to
what a stored error keeps (``ERROR_TEXT_LIMIT`` characters unless told)::

    >>> describe(ValueError("bad total"))
    'ValueError: bad total'
    >>> len(clip("x" * 10_000)), clip("abcdef", 3)
    (4000, 'abc')

Values stay out by default. A database error raised through SQLAlchemy carries
the statement's parameters (``[parameters: {...}]``: an event's payload, a
card number) and PostgreSQL's message quotes the values it refused (``invalid
input syntax for type integer: "4111..."``, ``Key (id)=(...) already
exists``). ``describe`` writes such an error as its class, SQLSTATE, the
message with quoted values masked, the constraint, and the statement's first
line, never the parameters; the runner's log, ``dead_letters.error``,
``checkpoints.last_error``, the inbox and the command bus's log all go through
it. ``reveal_values()`` turns the values back on, process-wide, for debugging::

    >>> mask_values('invalid input syntax for type integer: "4111 1111"')
    'invalid input syntax for type integer: "…"'
"""

from __future__ import annotations

import re

from sqlalchemy.exc import StatementError

ERROR_TEXT_LIMIT = 4000
"""Characters of error text kept in ``dead_letters.error`` and ``checkpoints.last_error``."""

_reveal = False
_QUOTED = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'')
_KEY_VALUES = re.compile(r"\)=\((.*?)\)( already exists| is not present| conflicts)", re.S)


def reveal_values(enabled: bool = True) -> None:
    """Show parameters and quoted values in error texts again (off by default).

    For debugging only: stored error texts and logs then hold payload values.
    """
    global _reveal
    _reveal = enabled


def mask_values(text: str) -> str:
    """``text`` with quoted spans and ``Key (...)=(...)`` values replaced by ``…``."""
    text = _KEY_VALUES.sub(lambda m: f")=(…){m.group(2)}", text)
    return _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], text)


def message(exc: BaseException) -> str:
    """The exception's message, without the values it may carry (see the module)."""
    if _reveal or not isinstance(exc, StatementError):
        return str(exc)
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if not primary:
        primary = str(orig) if orig is not None else ""
    lines = primary.strip().splitlines()
    parts = [mask_values(lines[0]) if lines else ""]
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        parts.append(f"(SQLSTATE {sqlstate})")
    constraint = getattr(diag, "constraint_name", None)
    if constraint:
        parts.append(f"[constraint {constraint}]")
    statement = (exc.statement or "").strip().splitlines()
    if statement:
        parts.append(f"[SQL: {statement[0][:200]}]")
    parts.append("[values hidden: cqrs.errortext.reveal_values() shows them]")
    origin = type(orig).__name__ if orig is not None else type(exc).__name__
    return f"({origin}) " + " ".join(p for p in parts if p)


def describe(exc: BaseException) -> str:
    """``"ExceptionClass: message"``, values hidden (see the module)."""
    return f"{type(exc).__name__}: {message(exc)}"


def clip(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters."""
    return text[:limit]
