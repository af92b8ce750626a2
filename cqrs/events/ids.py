"""Internal: UUIDv7 (RFC 9562) event ids, time-ordered so index inserts stay local.

The ids are built from one integer and put into a ``uuid.UUID`` without
``UUID.__init__`` (which parses and range-checks its arguments: a third of
the cost of an id). ``uuid7s(n)`` draws the randomness of ``n`` ids with one
``os.urandom`` call, for a batch of events.

    >>> a, b = uuid7s(2)
    >>> a.version, b.version, a.variant == uuid.RFC_4122, a != b
    (7, 7, True, True)
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

_RANDOM = (1 << 80) - 1 & ~(0xF000 << 64) & ~(0xC000 << 48)  # below the timestamp
_VERSION_VARIANT = 0x7000 << 64 | 0x8000 << 48  # version 7, variant 10
_new = object.__new__
_UUID = uuid.UUID
_set_int: Any = vars(uuid.UUID)["int"].__set__  # the slots' descriptors
_set_safe: Any = vars(uuid.UUID)["is_safe"].__set__
_UNKNOWN = uuid.SafeUUID.unknown
_from_bytes = int.from_bytes


def _make(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value known to be a valid 128-bit integer."""
    made: uuid.UUID = _new(_UUID)
    _set_int(made, value)
    _set_safe(made, _UNKNOWN)
    return made


def uuid7() -> uuid.UUID:
    """Return a new version 7 UUID: 48 bits of Unix milliseconds, then randomness.

    >>> uuid7().version
    7
    """
    millis = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
    rand = _from_bytes(os.urandom(10), "big")
    return _make(millis << 80 | rand & _RANDOM | _VERSION_VARIANT)


def uuid7s(count: int) -> list[uuid.UUID]:
    """``count`` new version 7 UUIDs of the same millisecond, from one ``os.urandom`` call."""
    if count == 1:
        return [uuid7()]
    stamp = (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_VARIANT
    pool = os.urandom(10 * count)
    return [
        _make(stamp | _from_bytes(pool[i : i + 10], "big") & _RANDOM)
        for i in range(0, 10 * count, 10)
    ]
