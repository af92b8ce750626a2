"""Passwords never show in messages or reprs; control characters never reach a terminal
or a log line as they are (``cqrs.redact``, and the places that use it)."""

from __future__ import annotations

import logging

import pytest

from cqrs.commands.context import CommandContext, CommandOutcome
from cqrs.commands.middleware import LoggingMiddleware
from cqrs.config import Settings, check_notify_channel, normalise_url
from cqrs.errors import ConfigurationError, ProjectionError
from cqrs.projections.declarative import Projection
from cqrs.redact import mask_url, printable
from cqrs.relay.publisher import broker_error

SECRET = "S3cr3t"


@pytest.mark.parametrize(
    "text",
    [
        "mysql://root:S3cr3t@db/shop",
        "postgresql+psycopg://app:S3cr3t@db:5432/shop",
        "postgresql://app:S3cr3t@db:abc/shop",  # unparseable: the pattern masks it
        "postgresql://app:S3cr3t@[::1/shop",
        "postgresql://app:pa@S3cr3t@db/shop",  # an unencoded '@' in the password
        "postgresql://app:pa/S3cr3t@db/shop",  # an unencoded '/' in the password
        "could not reach 'postgresql://app:S3cr3t@db/shop' (timeout)",
        "nats://relay:S3cr3t@broker:4222",
        "nats://S3cr3t@broker:4222",  # a NATS token in the user part
        "nats://a:S3cr3t@h1:4222, nats://b:S3cr3t@h2:4222",
        "host=db user=app password=S3cr3t dbname=shop",
        "postgresql://app@db/shop?password=S3cr3t&sslmode=require",
    ],
)
def test_mask_url_hides_the_password(text: str) -> None:
    masked = mask_url(text)
    assert SECRET not in masked
    assert "***" in masked


def test_mask_url_leaves_the_rest_readable() -> None:
    assert mask_url("mysql://root:S3cr3t@db/shop") == "mysql://root:***@db/shop"
    assert mask_url("postgresql://app@db:5432/shop") == "postgresql://app@db:5432/shop"
    assert mask_url("no url here: a:b@c") == "no url here: a:b@c"


def test_settings_repr_masks_the_password() -> None:
    settings = Settings(database_url="postgresql://app:S3cr3t@db/shop")
    assert settings.database_url == "postgresql+psycopg://app:S3cr3t@db/shop"  # the value is kept
    assert SECRET not in repr(settings)
    assert "postgresql+psycopg://app:***@db/shop" in repr(settings)
    assert "database_url=None" in repr(Settings())


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://root:S3cr3t@db/shop", "is not a PostgreSQL URL"),
        ("postgresql://app:S3cr3t@db:abc/shop", "cannot be parsed"),
        ("postgresql://app:S3cr3t@[::1/shop", "cannot be parsed"),
        ("postgresql://app:S3cr3t@db/sh\udcffop", "is not valid UTF-8"),
    ],
)
def test_bad_urls_are_configuration_errors_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        normalise_url(url)
    assert says in str(raised.value)
    assert SECRET not in str(raised.value)
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"CQRS_DATABASE_URL": url})
    assert SECRET not in str(raised.value)


def test_broker_errors_mask_the_nats_url() -> None:
    err = broker_error(OSError("connection refused"), "nats://relay:S3cr3t@broker:4222", "x")
    assert SECRET not in str(err)
    assert "nats://relay:***@broker:4222" in str(err)


def test_printable_escapes_controls_and_keeps_the_rest() -> None:
    assert printable("order-1") == "order-1"
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("a\nforged") == "a\\nforged"
    assert printable("\x9b31m\u202eevil\udcff") == "\\x9b31m\\u202eevil\\udcff"
    assert printable("two\nlines\x07", keep="\n") == "two\nlines\\x07"
    assert printable("ünïcødé ✓") == "ünïcødé ✓"


def test_notify_channel_over_63_bytes_is_refused() -> None:
    assert Settings(notify_channel="c" * 63).notify_channel == "c" * 63
    for bad in ("c" * 64, "é" * 32, ""):
        with pytest.raises(ConfigurationError, match="notify channel"):
            Settings(notify_channel=bad)
        with pytest.raises(ConfigurationError):
            check_notify_channel(bad)


def test_projection_names_cannot_take_the_rebuild_suffix() -> None:
    assert Projection("a#b").name == "a#b"
    with pytest.raises(ProjectionError, match="#rebuild"):
        Projection("orders#rebuild")


class _Command:
    pass


def _ctx(command_id: str) -> CommandContext:
    return CommandContext(
        command=_Command(), session=None,  # type: ignore[arg-type]
        command_id=command_id, correlation_id="c", causation_id="c",
    )  # fmt: skip


def test_a_command_id_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    forged = "c-1\n2026-01-01 00:00:00 INFO command transfer approved\x1b[2J"
    middleware = LoggingMiddleware()
    caplog.set_level(logging.DEBUG, logger="cqrs.commands")

    def fails(ctx: CommandContext) -> CommandOutcome[None]:
        raise ValueError("bad\nthing")

    with pytest.raises(ValueError):
        middleware(_ctx(forged), fails)
    middleware(_ctx(forged), lambda ctx: CommandOutcome(None, (), ctx.command_id))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    for message in messages:
        assert "\n" not in message and "\x1b" not in message
        assert "c-1\\n2026-01-01" in message
