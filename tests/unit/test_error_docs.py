"""Every error code has its section in docs/errors.md, and the tree lists every class."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import cqrs.errors as errors

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def _error_classes() -> list[type[errors.CqrsError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.CqrsError)
    ]


def test_every_code_has_a_docs_section() -> None:
    sections = set(re.findall(r"^## (\S+)$", DOCS.read_text(), flags=re.MULTILINE))
    missing = {cls.code for cls in _error_classes()} - sections
    assert not missing, f"docs/errors.md lacks sections for {sorted(missing)}"


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in _error_classes()]
    assert len(codes) == len(set(codes))


def test_tree_in_docstring_names_every_class() -> None:
    doc = errors.__doc__ or ""
    for cls in _error_classes():
        assert re.search(rf"\b{cls.__name__}\b\s+{re.escape(cls.code)}\b", doc), cls.__name__


def test_message_points_at_the_docs() -> None:
    err = errors.StreamNotFound("order-1")
    assert str(err).endswith("(see docs/errors.md#cqrs-stream-not-found)")
    assert "order-1" in str(err)
