"""Internal: how the toolkit writes an error down (dead letters, checkpoints, headers).

``describe`` names the exception's class and message; ``clip`` cuts the text to
what a stored error keeps (``ERROR_TEXT_LIMIT`` characters unless told)::

    >>> describe(ValueError("bad total"))
    'ValueError: bad total'
    >>> len(clip("x" * 10_000)), clip("abcdef", 3)
    (4000, 'abc')
"""

from __future__ import annotations

ERROR_TEXT_LIMIT = 4000
"""Characters of error text kept in ``dead_letters.error`` and ``checkpoints.last_error``."""


def describe(exc: BaseException) -> str:
    """``"ExceptionClass: message"``."""
    return f"{type(exc).__name__}: {exc}"


def clip(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters."""
    return text[:limit]
