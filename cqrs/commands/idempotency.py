"""Internal: the ``processed_commands`` bookkeeping behind idempotent commands.

The command id is claimed *before* the handler runs (``INSERT ... ON CONFLICT
DO NOTHING``): a concurrent duplicate waits on the row until the first
transaction ends, then sees it and returns the first result. The result is
written in the same transaction as the command's events.
"""

from __future__ import annotations

import json
from typing import Any

import cattrs
from sqlalchemy import Connection, text

from cqrs.errors import InvalidInput, SerializationError
from cqrs.store.validation import check_depth

_CLAIM = text(
    "INSERT INTO processed_commands (command_id, command_type) VALUES (:cid, :ctype) "
    "ON CONFLICT (command_id) DO NOTHING RETURNING command_id"
)
_FIRST = text("SELECT command_type, result FROM processed_commands WHERE command_id = :cid")
_STORE = text(
    "UPDATE processed_commands SET result = CAST(:result AS jsonb) WHERE command_id = :cid"
)

_NOTHING = object()


def claim(conn: Connection, command_id: str, command_type: str) -> object:
    """Claim ``command_id``; answer the first run's stored JSON result, or ``_NOTHING``
    when this is the first run."""
    if conn.execute(_CLAIM, {"cid": command_id, "ctype": command_type}).first() is not None:
        return _NOTHING
    first_type, result = conn.execute(_FIRST, {"cid": command_id}).one()
    if first_type != command_type:
        raise InvalidInput(
            f"command id {command_id!r} was already used by a {first_type} command, not "
            f"{command_type}; give every command its own id"
        )
    return result


def is_first_run(claimed: object) -> bool:
    return claimed is _NOTHING


def store_result(
    conn: Connection,
    command_id: str,
    result: Any,
    converter: cattrs.Converter,
    max_depth: int = 100,
) -> None:
    """Keep the handler's result so a repeat of the command can return it.

    A result jsonb cannot hold (not JSON, a NUL, a lone surrogate, nested
    deeper than ``max_depth``) raises a ``CqrsError`` before it is sent.
    """
    payload = encode_result(command_id, result, converter, max_depth)
    if payload is not None:
        conn.execute(_STORE, {"cid": command_id, "result": payload})


def encode_result(
    command_id: str, result: Any, converter: cattrs.Converter, max_depth: int = 100
) -> str | None:
    """The JSON text ``processed_commands`` keeps for ``result`` (``None`` for ``None``);
    raises a ``CqrsError`` for a result jsonb cannot hold (see :func:`store_result`)."""
    if result is None:
        return None
    check_depth(result, max_depth, f"the result of command {command_id!r}")
    try:
        payload = json.dumps(
            converter.unstructure(result), separators=(",", ":"), ensure_ascii=False
        )
        payload.encode()
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise SerializationError(
            f"the result of command {command_id!r} does not serialise to JSON: {exc}; "
            "idempotent handlers must return JSON-friendly values (or attrs classes) "
            "holding UTF-8 text"
        ) from exc
    if "\\u0000" in payload:
        raise SerializationError(
            f"the result of command {command_id!r} holds a NUL character (U+0000), which "
            "jsonb cannot store; strip it from the result"
        )
    return payload
