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
