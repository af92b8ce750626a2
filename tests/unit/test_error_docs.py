"""Every error code has its section in docs/errors.md, the tree lists every class, and
every message points at ``cqrs explain CODE``, which prints that section."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import cqrs.errors as errors
from cqrs.cli.main import main
from cqrs.docs import docs_path, error_codes, error_section

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
    assert str(err).endswith("(see `cqrs explain cqrs-stream-not-found`)")
    assert "order-1" in str(err)


def test_the_installed_docs_are_the_ones_checked_here() -> None:
    assert (docs_path() / "errors.md").read_text() == DOCS.read_text()
    assert set(error_codes()) >= {cls.code for cls in _error_classes()}


@pytest.mark.parametrize("code", sorted(cls.code for cls in _error_classes()))
def test_cqrs_explain_prints_the_section(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", code]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"## {code}\n")
    assert out == error_section(code)
    assert len(out.splitlines()) > 1, f"{code}: the section has no text"


def test_cqrs_explain_refuses_an_unknown_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "cqrs-nope"]) != 0
    err = capsys.readouterr().err
    assert "no error code 'cqrs-nope'" in err and "cqrs-concurrency" in err
