"""Internal: the read path's JSON parser agrees with json.loads on what PostgreSQL prints."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cqrs.store.rows import loads as _loads

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_agrees_with_json_loads(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert _loads(text) == json.loads(text)


def test_empty_objects_are_fresh_dicts() -> None:
    first, second = _loads("{}"), _loads("{}")
    first["k"] = 1
    assert second == {}


@pytest.mark.parametrize("text", [" {} ", "\n[1, 2]\t", '{"a": "\\u0041"}'])
def test_blanks_and_escapes_agree(text: str) -> None:
    assert _loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "nope"])
def test_bad_text_raises_like_json_loads(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        _loads(text)


# -- writing: cqrs.jsontext calls the C encoder directly; it must print what json.dumps does


finite_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(finite_values)
def test_dumps_prints_what_json_dumps_prints(value: Any) -> None:
    from cqrs import jsontext

    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert jsontext.dumps(value) == expected


def test_dumps_refuses_what_json_dumps_refuses() -> None:
    from cqrs import jsontext

    for bad in (float("nan"), [float("inf")], {"x": float("-inf")}):
        with pytest.raises(ValueError):
            jsontext.dumps(bad)
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsontext.dumps({"s": {1, 2}})
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="refers to itself"):
        jsontext.dumps(loop)
    # a failed call leaves nothing behind: the same value encodes afterwards
    shared = {"a": [1, 2]}
    with pytest.raises(TypeError):
        jsontext.dumps([shared, object()])
    assert jsontext.dumps([shared, shared]) == '[{"a":[1,2]},{"a":[1,2]}]'


def test_encoder_default_hook_and_keys_like_json() -> None:
    from decimal import Decimal

    from cqrs import jsontext

    enc = jsontext.encoder(default=str)
    value = {"d": Decimal("1.5"), 1: True, None: "x", "z": "Zoë\u2028"}
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    assert enc(value) == expected
    assert enc('a"b\\c\n') == json.dumps('a"b\\c\n')
