"""Internal: the array parameters of the append statements as ONE PostgreSQL array literal each.

psycopg adapts a Python list element by element (a dumper looked up and
called per value); a batch append sends five to ten such arrays of up to
thousands of elements, and that adaptation was a third of its client work.
These functions write the literal text directly; the statements cast it
(``CAST(:ids AS uuid[])``), so the server parses it with the element type's
own input function.

Text elements are always double-quoted, with ``\\`` and ``"`` escaped, so
commas, braces, blanks, ``NULL`` and the empty string come back as written;
``None`` is the unquoted ``NULL``. NUL cannot be sent in any text parameter
(psycopg refuses it, as it refuses it in a list)::

    >>> texts(['a', 'NULL', '', 'x,"y"\\\\z', None])
    '{"a","NULL","","x,\\\\"y\\\\"\\\\\\\\z",NULL}'
    >>> ints([1, None, -3]), uuids([uuid.UUID(int=255)]), texts([])
    ('{1,NULL,-3}', '{000000000000000000000000000000ff}', '{}')
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence


def texts(values: Sequence[str | None]) -> str:
    """A ``text[]`` literal of ``values`` (``None`` is ``NULL``)."""
    if not values:
        return "{}"
    if None not in values:
        plain: Sequence[str] = values  # type: ignore[assignment]  # no None in it
        joined = "".join(plain)
        if "\\" not in joined and '"' not in joined:
            return '{"' + '","'.join(plain) + '"}'
    return "{" + ",".join("NULL" if v is None else _quoted(v) for v in values) + "}"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ints(values: Sequence[int | None]) -> str:
    """An ``int[]`` / ``bigint[]`` literal of ``values`` (``None`` is ``NULL``)."""
    if None not in values:
        return "{" + ",".join(map(str, map(int, values))) + "}"  # type: ignore[arg-type]
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


def uuids(values: Sequence[uuid.UUID]) -> str:
    """A ``uuid[]`` literal: 32 hex digits each (a form ``uuid`` input accepts)."""
    # one hex() over all their bytes, comma every 16: half the cost of a format per value
    return "{" + b"".join([v.int.to_bytes(16, "big") for v in values]).hex(",", 16) + "}"
