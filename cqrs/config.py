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
from sqlalchemy import make_url

from cqrs.errors import ConfigurationError
from cqrs.redact import mask_url, printable

Partitioning = Literal["range", "hash"]

DEFAULT_NOTIFY_CHANNEL = "cqrs_events"
"""The ``LISTEN``/``NOTIFY`` channel of the runners' wake-up hints, unless configured."""


def normalise_url(url: str) -> str:
    """Make a libpq-style ``postgresql://`` URL use SQLAlchemy's psycopg 3 driver.

    Raises :class:`~cqrs.errors.ConfigurationError` for a URL that is not
    PostgreSQL's or that cannot be parsed; its message shows the URL with the
    password masked.
    """
    shown = printable(mask_url(url))
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"database URL '{shown}' is not valid UTF-8; write it in UTF-8, "
            "percent-encoding other bytes"
        ) from None
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
            break
    else:
        if not url.startswith("postgresql+"):
            raise ConfigurationError(
                f"database URL '{shown}' is not a PostgreSQL URL; use postgresql://user@host/db"
            )
    try:
        make_url(url).port  # noqa: B018 - parses the whole URL, the port included
    except Exception:  # its text may quote part of the password: never shown
        raise ConfigurationError(
            f"database URL '{shown}' cannot be parsed: look for a port that is not a number, "
            "an IPv6 host without its closing ']' or a password with unencoded special "
            "characters (percent-encode them: '@' is %40, '/' is %2F, ':' is %3A)"
        ) from None
    return url


def _url_repr(value: str | None) -> str:
    return repr(None if value is None else mask_url(value))


# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes, and pg_notify refuses
# a longer channel name: the runner would LISTEN on the truncated name and never hear.
MAX_CHANNEL_BYTES = 63


def check_notify_channel(channel: str) -> str:
    """``channel`` when PostgreSQL can ``NOTIFY`` and ``LISTEN`` on it, else
    :class:`~cqrs.errors.ConfigurationError`.

    >>> check_notify_channel("cqrs_events")
    'cqrs_events'
    """
    if not isinstance(channel, str) or not channel:
        raise ConfigurationError(
            f"notify channel must be a non-empty string, got {channel!r}; "
            "use a name like 'cqrs_events'"
        )
    size = len(channel.encode("utf-8", "surrogatepass"))
    if size > MAX_CHANNEL_BYTES or "\x00" in channel:
        raise ConfigurationError(
            f"notify channel {printable(channel)!r} is {size} bytes; PostgreSQL channel names "
            f"are at most {MAX_CHANNEL_BYTES} bytes without NUL characters (a longer one "
            "never sends), so choose a shorter Settings.notify_channel"
        )
    return channel


def _notify_channel(_: object, __: object, value: str) -> None:
    check_notify_channel(value)


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
    partitions upkeep keeps ready. ``notify_channel`` is the ``LISTEN``/``NOTIFY``
    channel of the wake-up hint (at most 63 bytes, PostgreSQL's identifier limit).
    The ``repr`` masks the database URL's password.

    The input limits (checked before anything is sent, ``cqrs.store.validation``):
    ``max_id_length`` (stream ids, in characters), ``max_type_length`` (event and
    stream type names), ``max_command_id_length``, ``max_payload_bytes`` (an
    event's JSON payload plus metadata), ``max_nesting_depth`` (levels of dicts,
    lists and attrs objects in a payload or metadata) and ``max_read_limit``
    (the largest ``read_all(limit=...)``). Each is read by :meth:`from_env` from
    ``CQRS_<NAME>`` (``CQRS_MAX_TYPE_LENGTH``, ...).
    """

    database_url: str | None = attrs.field(
        default=None, converter=attrs.converters.optional(normalise_url), repr=_url_repr
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
    notify_channel: str = attrs.field(default=DEFAULT_NOTIFY_CHANNEL, validator=_notify_channel)

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
        for name in _INT_SETTINGS:
            if raw := env.get(f"CQRS_{name.upper()}"):
                try:
                    kwargs[name] = int(raw)
                except ValueError:
                    raise ConfigurationError(
                        f"CQRS_{name.upper()} must be an integer, got {raw!r}"
                    ) from None
        return cls(**kwargs)  # type: ignore[arg-type]
