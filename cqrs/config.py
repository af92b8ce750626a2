"""Public: the toolkit's settings, frozen; reading the environment is opt-in.

Example::

    >>> from cqrs.config import Settings
    >>> Settings(partitioning="hash", hash_partitions=4).partitioning
    'hash'
    >>> Settings.from_env({"CQRS_DATABASE_URL": "postgresql://u@h/db"}).database_url
    'postgresql+psycopg://u@h/db'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import attrs

from cqrs.errors import ConfigurationError

Partitioning = Literal["range", "hash"]


def normalise_url(url: str) -> str:
    """Make a libpq-style ``postgresql://`` URL use SQLAlchemy's psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not url.startswith("postgresql+"):
        raise ConfigurationError(
            f"database URL {url!r} is not a PostgreSQL URL; use postgresql://user@host/db"
        )
    return url


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ConfigurationError(f"Settings.{attribute.name} must be positive, got {value}")


MAX_NESTING_DEPTH = 200
"""The deepest ``max_nesting_depth`` allowed: the JSON codec recurses once (or more)
per level, and Python's default recursion limit is 1000."""


def _nesting(_: object, __: object, value: int) -> None:
    if not 1 <= value <= MAX_NESTING_DEPTH:
        raise ConfigurationError(
            f"Settings.max_nesting_depth must be from 1 to {MAX_NESTING_DEPTH} (deeper "
            f"structures exhaust Python's recursion limit while encoding), got {value}"
        )


def _partitioning(_: object, __: object, value: str) -> None:
    if value not in ("range", "hash"):
        raise ConfigurationError(
            f"Settings.partitioning must be 'range' (monthly, on recorded_at) "
            f"or 'hash' (on stream_id), got {value!r}"
        )


_INT_SETTINGS = (
    "hash_partitions",
    "months_ahead",
    "max_id_length",
    "max_payload_bytes",
    "max_type_length",
    "max_command_id_length",
    "max_nesting_depth",
    "max_read_limit",
)


@attrs.frozen
class Settings:
    """Everything the toolkit can be told.

    ``partitioning`` picks how the ``events`` table is split: ``"range"``
    (monthly on ``recorded_at``, the default) or ``"hash"`` (``hash_partitions``
    partitions on ``stream_id``). ``months_ahead`` is how many future monthly
    partitions upkeep keeps ready.

    The input limits (checked before anything is sent, ``cqrs.store.validation``):
    ``max_id_length`` (stream ids, in characters), ``max_type_length`` (event and
    stream type names), ``max_command_id_length``, ``max_payload_bytes`` (an
    event's JSON payload plus metadata), ``max_nesting_depth`` (levels of dicts,
    lists and attrs objects in a payload or metadata) and ``max_read_limit``
    (the largest ``read_all(limit=...)``). Each is read by :meth:`from_env` from
    ``CQRS_<NAME>`` (``CQRS_MAX_TYPE_LENGTH``, ...).
    """

    database_url: str | None = attrs.field(
        default=None, converter=attrs.converters.optional(normalise_url)
    )
    partitioning: Partitioning = attrs.field(default="range", validator=_partitioning)
    hash_partitions: int = attrs.field(default=8, validator=_positive)
    months_ahead: int = attrs.field(default=3, validator=_positive)
    max_id_length: int = attrs.field(default=200, validator=_positive)
    max_payload_bytes: int = attrs.field(default=1_000_000, validator=_positive)
    max_type_length: int = attrs.field(default=200, validator=_positive)
    max_command_id_length: int = attrs.field(default=200, validator=_positive)
    max_nesting_depth: int = attrs.field(default=100, validator=_nesting)
    max_read_limit: int = attrs.field(default=10_000, validator=_positive)
    notify_channel: str = "cqrs_events"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``CQRS_*`` variables (``CQRS_DATABASE_URL``, ``CQRS_PARTITIONING``, ...)."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        if url := env.get("CQRS_DATABASE_URL"):
            kwargs["database_url"] = url
        if value := env.get("CQRS_PARTITIONING"):
            kwargs["partitioning"] = value
        for name in _INT_SETTINGS:
            if raw := env.get(f"CQRS_{name.upper()}"):
                try:
                    kwargs[name] = int(raw)
                except ValueError:
                    raise ConfigurationError(
                        f"CQRS_{name.upper()} must be an integer, got {raw!r}"
                    ) from None
        return cls(**kwargs)  # type: ignore[arg-type]
