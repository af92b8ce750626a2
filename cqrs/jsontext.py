"""Internal: the toolkit's one JSON text convention for what it hands PostgreSQL as jsonb.

Compact separators, non-ASCII characters kept as they are (UTF-8, so a payload's
size is what it costs), ``NaN`` and the infinities refused (``ValueError``: jsonb
cannot hold them). Event payloads and metadata (``cqrs.events.codec``), snapshot
states (``cqrs.aggregates.snapshots``) and the rows of a projection batch
(``cqrs.projections.writes``) are all written this way. The event codec's output
is what ``Settings.max_payload_bytes`` measures, so this text must not change
byte for byte::

    >>> dumps({"total": "12.50", "name": "Zoë", "tags": [1, 2]})
    '{"total":"12.50","name":"Zoë","tags":[1,2]}'
    >>> try:
    ...     dumps(float("nan"))
    ... except ValueError:
    ...     print("refused")
    refused

Reading jsonb back is the driver's job, or the store's fast path
(``cqrs.store.event_store``), so there is no ``loads`` here.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

# CPython's C encoder (None elsewhere: then JSONEncoder, the same text more slowly)
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_string: Callable[[str], str] = json.encoder.encode_basestring

_OPTIONS: dict[str, Any] = {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False}

_refuse = json.JSONEncoder().default  # TypeError: "Object of type X is not JSON serializable"


def encoder(default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """A ``dumps`` with the convention and ``default`` for other types (as ``json.dumps``).

    Build it once and keep it. It calls the C encoder ``json`` itself uses,
    built once here: ``JSONEncoder.encode`` builds one per call, which cost
    more than encoding a small event. Without the circular-reference table
    (shared between threads it could report a cycle that is not there), a
    value that refers to itself raises ``ValueError`` when the recursion
    limit stops it.

    >>> from decimal import Decimal
    >>> encoder(default=str)({"n": 1, "total": Decimal("12.50")})
    '{"n":1,"total":"12.50"}'
    >>> loop: list[object] = []
    >>> loop.append(loop)
    >>> dumps(loop)
    Traceback (most recent call last):
    ValueError: the value nests too deep for JSON, or refers to itself
    """
    if _c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(default=default, **_OPTIONS).encode
    chunks = _c_make_encoder(
        None, default or _refuse, _c_string, None, ":", ",", False, False, False
    )
    join = "".join

    def encode(value: Any) -> str:
        if type(value) is str:
            return _c_string(value)
        try:
            return join(chunks(value, 0))
        except RecursionError:
            raise ValueError("the value nests too deep for JSON, or refers to itself") from None

    return encode


dumps = encoder()
"""``value`` as JSON text in the toolkit's convention (see the module doc)."""
