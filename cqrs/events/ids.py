"""Internal: UUIDv7 (RFC 9562) event ids, time-ordered so index inserts stay local."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """Return a new version 7 UUID: 48 bits of Unix milliseconds, then randomness.

    >>> uuid7().version
    7
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | rand
    value &= ~(0xF000 << 64)  # version nibble
    value |= 0x7000 << 64
    value &= ~(0xC000 << 48)  # variant bits
    value |= 0x8000 << 48
    return uuid.UUID(int=value)
