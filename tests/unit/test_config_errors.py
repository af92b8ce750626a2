"""Internal: ``Settings`` validation and the payloads of the store's typed errors."""

from __future__ import annotations

import pytest

from cqrs import NO_STREAM, Settings
from cqrs.config import normalise_url
from cqrs.errors import (
    ConcurrencyError,
    ConfigurationError,
    CqrsError,
    DuplicateEventError,
    InvalidInput,
    InvalidStreamId,
    PartitionMissing,
    PayloadTooLarge,
    SerializationError,
    StreamArchived,
    UnknownEventType,
)


def test_defaults() -> None:
    s = Settings()
    assert (s.partitioning, s.hash_partitions, s.months_ahead) == ("range", 8, 3)
    assert (s.max_id_length, s.max_payload_bytes, s.database_url) == (200, 1_000_000, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"partitioning": "list"},
        {"hash_partitions": 0},
        {"months_ahead": -1},
        {"max_id_length": 0},
        {"max_payload_bytes": 0},
        {"database_url": "mysql://u@h/db"},
    ],
    ids=str,
)
def test_bad_settings_raise_configuration_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(**kwargs)  # type: ignore[arg-type]
    assert info.value.code == "cqrs-config"
    (name,) = kwargs
    expected = "is not a PostgreSQL URL" if name == "database_url" else f"Settings.{name} must"
    assert expected in str(info.value)


def test_settings_are_frozen() -> None:
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Settings().partitioning = "hash"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_urls_are_normalised_to_psycopg3(url: str, normal: str) -> None:
    assert normalise_url(url) == normal


def test_from_env_is_explicit_and_parses_every_variable() -> None:
    env = {
        "CQRS_DATABASE_URL": "postgres://u@h/db",
        "CQRS_PARTITIONING": "hash",
        "CQRS_HASH_PARTITIONS": "16",
        "CQRS_MONTHS_AHEAD": "6",
        "CQRS_MAX_ID_LENGTH": "64",
        "CQRS_MAX_PAYLOAD_BYTES": "1024",
        "UNRELATED": "x",
    }
    s = Settings.from_env(env)
    assert s == Settings(
        database_url="postgresql+psycopg://u@h/db",
        partitioning="hash",
        hash_partitions=16,
        months_ahead=6,
        max_id_length=64,
        max_payload_bytes=1024,
    )
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    "env",
    [{"CQRS_HASH_PARTITIONS": "many"}, {"CQRS_PARTITIONING": "list"}, {"CQRS_MONTHS_AHEAD": "0"}],
    ids=str,
)
def test_from_env_rejects_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)


# -- the store's errors carry what a caller needs ---------------------------------


def test_concurrency_error_fields_and_message() -> None:
    err = ConcurrencyError("order-1", expected=3, actual=4)
    assert (err.stream_id, err.expected, err.actual) == ("order-1", 3, 4)
    assert "version 4" in str(err) and "retry" in str(err)
    missing = ConcurrencyError("order-1", expected=NO_STREAM, actual=None)
    assert missing.actual is None and "no stream" in str(missing)
    assert str(missing).endswith("(see `cqrs explain cqrs-concurrency`)")


def test_input_errors_are_one_family() -> None:
    assert issubclass(InvalidStreamId, InvalidInput) and issubclass(PayloadTooLarge, InvalidInput)
    assert issubclass(UnknownEventType, SerializationError)
    for cls in (InvalidInput, ConcurrencyError, StreamArchived, PartitionMissing):
        assert issubclass(cls, CqrsError)


def test_error_payloads() -> None:
    sid = InvalidStreamId("", "is empty")
    assert sid.stream_id == "" and "is empty" in str(sid) and sid.code == "cqrs-stream-id"
    big = PayloadTooLarge("t.x", 2000, 1000)
    assert (big.event_type, big.size, big.limit) == ("t.x", 2000, 1000)
    assert "max_payload_bytes" in str(big)
    dup = DuplicateEventError("s-1", ["id-1"])
    assert (dup.stream_id, dup.event_ids) == ("s-1", ["id-1"])
    assert StreamArchived("s-1").stream_id == "s-1"
    unknown = UnknownEventType("t.y", "s-2", 17)
    assert (unknown.event_type, unknown.stream_id, unknown.global_position) == ("t.y", "s-2", 17)
    assert "partitions ensure" in str(PartitionMissing("no partition for 2031-01"))
