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

DEFAULT_NOTIFY_CHANNEL = "cqrs_events"
"""The ``LISTEN``/``NOTIFY`` channel of the runners' wake-up hints, unless configured."""


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


def _partitioning(_: object, __: object, value: str) -> None:
    if value not in ("range", "hash"):
        raise ConfigurationError(
            f"Settings.partitioning must be 'range' (monthly, on recorded_at) "
            f"or 'hash' (on stream_id), got {value!r}"
        )


@attrs.frozen
class Settings:
    """Everything the toolkit can be told.

    ``partitioning`` picks how the ``events`` table is split: ``"range"``
    (monthly on ``recorded_at``, the default) or ``"hash"`` (``hash_partitions``
    partitions on ``stream_id``). ``months_ahead`` is how many future monthly
    partitions upkeep keeps ready.
    """

    database_url: str | None = attrs.field(
        default=None, converter=attrs.converters.optional(normalise_url)
    )
    partitioning: Partitioning = attrs.field(default="range", validator=_partitioning)
    hash_partitions: int = attrs.field(default=8, validator=_positive)
    months_ahead: int = attrs.field(default=3, validator=_positive)
    max_id_length: int = attrs.field(default=200, validator=_positive)
    max_payload_bytes: int = attrs.field(default=1_000_000, validator=_positive)
    notify_channel: str = DEFAULT_NOTIFY_CHANNEL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``CQRS_*`` variables (``CQRS_DATABASE_URL``, ``CQRS_PARTITIONING``, ...)."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        if url := env.get("CQRS_DATABASE_URL"):
            kwargs["database_url"] = url
        if value := env.get("CQRS_PARTITIONING"):
            kwargs["partitioning"] = value
        if value := env.get("CQRS_NOTIFY_CHANNEL"):
            kwargs["notify_channel"] = value
        for name in ("hash_partitions", "months_ahead", "max_id_length", "max_payload_bytes"):
            if raw := env.get(f"CQRS_{name.upper()}"):
                try:
                    kwargs[name] = int(raw)
                except ValueError:
                    raise ConfigurationError(
                        f"CQRS_{name.upper()} must be an integer, got {raw!r}"
                    ) from None
        return cls(**kwargs)  # type: ignore[arg-type]
