"""Internal: the documentation site (mkdocs.yml, mkdocs_hooks.py) covers every page and
every public module, and its strict build refuses broken links."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")  # the docs extra (pulled into dev) brings it with mkdocs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(nav: Any) -> list[str]:
    """Every page a nav (a list of ``{title: page or nav}`` or pages) names."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    raise AssertionError(f"unexpected nav entry {nav!r}")


def site_nav() -> list[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return nav_pages(config["nav"])


def test_every_guide_is_in_the_nav() -> None:
    guides = {f"guides/{path.name}" for path in (DOCS / "guides").glob("*.md")}
    assert guides, "docs/guides/ has no page"
    missing = guides - set(site_nav())
    assert not missing, f"add these pages of docs/guides/ to the nav in mkdocs.yml: {missing}"


def test_every_page_of_docs_is_in_the_nav_once_and_every_nav_page_exists() -> None:
    nav = site_nav()
    assert len(nav) == len(set(nav)), nav
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    generated = {"index.md", *hooks().reference_pages()}
    assert pages - set(nav) == set()
    assert set(nav) - pages == generated  # the hook makes these; nothing else is missing


def test_every_public_module_is_on_one_reference_page() -> None:
    module = hooks()
    pages = module.reference_pages()
    assert set(pages) <= set(site_nav())
    shown = [
        line.removeprefix("::: ")
        for text in pages.values()
        for line in text.splitlines()
        if line.startswith("::: ")
    ]
    assert len(shown) == len(set(shown)), shown
    public = set()
    for path in (ROOT / "cqrs").rglob("*.py"):
        if "versions" not in path.parts and module.is_public(path):
            public.add(module.module_name(path))
    assert set(shown) == public
    for name in ("cqrs.store.event_store", "cqrs.errors", "cqrs.testing.pytest_plugin"):
        assert name in shown


def test_a_room_without_a_page_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    module = hooks()
    monkeypatch.delitem(module.ROOMS, "relay")
    with pytest.raises(ValueError, match="relay"):
        module.reference_pages()


def test_the_home_page_is_the_readme_with_links_into_docs_made_relative() -> None:
    index = hooks().readme_as_index()
    assert index.startswith("# cqrs")
    assert hooks()._DOCS_LINK.sub("](", "see [ops](docs/guides/operations.md)") == (
        "see [ops](guides/operations.md)"
    )


def test_the_strict_build_refuses_a_broken_link(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    with (docs / "guides" / "testing.md").open("a") as page:
        page.write("\nSee [the runner](runner.md) and [retries](commands.md#no-such-part).\n")
    config = load_config(
        str(ROOT / "mkdocs.yml"), docs_dir=str(docs), site_dir=str(tmp_path / "site"),
        strict=True,
    )  # fmt: skip
    with pytest.raises(Abort, match="2 warnings"):
        build(config)


def test_sphinx_roles_become_code_linked_when_they_resolve() -> None:
    known = {"cqrs.errors.ConcurrencyError": "cqrs.errors.ConcurrencyError"}
    text = (
        "raises :class:`~cqrs.errors.ConcurrencyError`, see :meth:`EventStore.append` and "
        ":meth:`append_many <cqrs.errors.ConcurrencyError>`"
    )
    assert hooks().roles_to_markdown(text, known.get) == (
        "raises [`ConcurrencyError`][cqrs.errors.ConcurrencyError], see `EventStore.append` and "
        "[`append_many`][cqrs.errors.ConcurrencyError]"
    )


def test_the_package_examples_run_as_doctests() -> None:
    import tomllib

    pytest_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = pytest_config["ini_options"]
    assert "cqrs" in options["testpaths"]
    assert "--doctest-modules" in options["addopts"].split()


def _first_line(lines: list[str], n: int) -> int:
    """The ``>>>`` line of the example whose last line is ``n``."""
    while n > 0 and lines[n].lstrip().startswith("..."):
        n -= 1
    return n


def _says_why(lines: list[str], n: int) -> bool:
    """Whether the skipped example ending at line ``n`` has a comment saying why: on
    its own lines, or a ``>>> #`` line above it or above the skipped examples it ends."""
    start = _first_line(lines, n)
    example = "\n".join(lines[start : n + 1])
    if "#" in example.replace("# doctest: +SKIP", "").split(">>>", 1)[-1]:
        return True
    above = lines[start - 1].strip() if start > 0 else ""
    if above.startswith(">>> #"):
        return True
    before = _first_line(lines, start - 1) if start > 0 else start
    previous = "\n".join(lines[before:start])
    return before < start and "doctest: +SKIP" in previous and _says_why(lines, start - 1)


def test_every_skipped_example_says_why() -> None:
    """A ``# doctest: +SKIP`` stays only where an example cannot run here; a comment
    (``# needs a live NATS server``) says why."""
    unexplained = []
    for path in sorted((ROOT / "cqrs").rglob("*.py")):
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if "doctest: +SKIP" in line and not _says_why(lines, n):
                unexplained.append(f"{path.relative_to(ROOT)}:{n + 1}")
    assert not unexplained, f"say why these examples are not run: {unexplained}"
