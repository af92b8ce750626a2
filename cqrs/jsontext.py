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
from collections.abc import Callable
from typing import Any

_OPTIONS: dict[str, Any] = {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False}


def encoder(default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """A ``dumps`` with the convention and ``default`` for other types (as ``json.dumps``).

    Build it once and keep it: ``json.dumps`` with options builds an encoder per call.

    >>> from decimal import Decimal
    >>> encoder(default=str)({"n": 1, "total": Decimal("12.50")})
    '{"n":1,"total":"12.50"}'
    """
    return json.JSONEncoder(default=default, **_OPTIONS).encode


dumps = encoder()
"""``value`` as JSON text in the toolkit's convention (see the module doc)."""
