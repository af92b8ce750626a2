"""The one helper per repeated concept: back-off, error text, JSON text, SQL names."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal

import pytest
from sqlalchemy.dialects import postgresql

from cqrs import jsontext, sqlnames
from cqrs.backoff import delay
from cqrs.commands.middleware import RetryOnConflict
from cqrs.errortext import ERROR_TEXT_LIMIT, clip, describe
from cqrs.relay.inbox import RetryPolicy

PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [delay(n, 0.1, 1.0) for n in range(0, 7)] == [0.1, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_never_overflows_however_many_failures() -> None:
    # The inbox counts broker failures without bound; 0.2 * 2 ** 1999 overflowed a float.
    assert RetryPolicy().delay(2000) == 10.0
    assert delay(10**6, 0.1, 30.0) == 30.0
    assert RetryOnConflict(attempts=3).delay(10**6, random.Random(1)) <= 0.25


def test_backoff_with_jitter_draws_below_the_ceiling() -> None:
    rng = random.Random(3)
    draws = [RetryOnConflict(base_delay=0.01, max_delay=1).delay(4, rng) for _ in range(200)]
    assert all(0 <= d <= 0.08 for d in draws) and len(set(draws)) > 100
    assert delay(4, 0.01, 1.0, jitter=lambda a, b: b) == 0.08


def test_error_text_is_named_and_clipped() -> None:
    assert describe(KeyError("k")) == "KeyError: 'k'"
    assert len(clip("é" * (ERROR_TEXT_LIMIT + 10))) == ERROR_TEXT_LIMIT
    assert clip("short") == "short"


def test_json_text_is_compact_utf8_and_refuses_nan() -> None:
    value = {"name": "Zoë", "tags": [1, 2.5], "nested": {"ok": True, "none": None}}
    assert jsontext.dumps(value) == json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    with pytest.raises(ValueError):
        jsontext.dumps({"x": float("inf")})
    assert jsontext.encoder(default=str)([Decimal("1.50")]) == '["1.50"]'


def test_sql_names_quote_identifiers_and_render_only_safe_literals() -> None:
    assert sqlnames.quote(PG, "rm%sx") == '"rm%sx"'
    assert sqlnames.quote(PG, 'a"b') == '"a""b"'
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rendered = sqlnames.render(PG, "{t} {n} {at}", t="Odd Name", n=3, at=at)
    assert rendered == "\"Odd Name\" 3 '2026-01-01 00:00:00+00:00'"
    assert sqlnames.render(PG, "{v}", v="x'; --") == '"x\'; --"'  # a str is a name, quoted
    for bad in (1.5, b"x", True, None, dt.datetime(2026, 1, 1)):
        with pytest.raises(TypeError):
            sqlnames.render(PG, "{v}", v=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("module", ["backoff", "errortext", "jsontext", "sqlnames"])
def test_the_examples_in_the_docstrings_hold(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"cqrs.{module}"))
    assert result.failed == 0 and result.attempted > 0
