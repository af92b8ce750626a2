"""Public: the JetStream subject an event is published on.

The documented default is ``<prefix>.<stream type>.<event type>``: the
relay's prefix, the stream's type, and the event's stored type name, whose
dots become subject levels. Characters a subject token cannot hold (spaces,
``*``, ``>``, control characters) become ``_``::

    >>> default_subject("shop", "order", "shop.order.placed")
    'shop.order.shop.order.placed'
    >>> default_subject("events", "customer account", "registered")
    'events.customer_account.registered'

A relay overrides it per event type (``Relay.select(..., subject=...)``) with
a fixed subject or a function of the recorded event; consumers then filter
with wildcards, e.g. ``shop.order.>``.
"""

from __future__ import annotations

import re

from cqrs.errors import RelayError

_BAD = re.compile(r"[^A-Za-z0-9_\-:]")


def token(value: str) -> str:
    """``value`` made into one subject token (never empty, no dots or wildcards)."""
    cleaned = _BAD.sub("_", value)
    return cleaned or "_"


def default_subject(prefix: str, stream_type: str, event_type: str) -> str:
    """``<prefix>.<stream type>.<event type>``, each part made subject-safe."""
    levels = [token(part) for part in event_type.split(".")]
    return ".".join([prefix, token(stream_type or "stream"), *levels])


def check_subject(subject: str, *, what: str = "subject") -> str:
    """``subject`` if it is a publishable NATS subject, else :class:`RelayError`."""
    if not isinstance(subject, str) or not subject:
        raise RelayError(f"{what} must be a non-empty string, got {subject!r}")
    parts = subject.split(".")
    if any(not p or not _publishable(p) for p in parts):
        raise RelayError(
            f"{what} {subject!r} is not a publishable NATS subject: use dot-separated "
            "tokens of letters, digits, '_', '-' or ':' (no spaces, no '*' or '>' wildcards)"
        )
    return subject


def _publishable(part: str) -> bool:
    return not _BAD.search(part)
