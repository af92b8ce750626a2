"""Internal: MkDocs hooks that build the pages the site has and ``docs/`` does not.

* ``index.md`` is ``README.md``, with its links to ``docs/...`` made relative
  to the site's root (``docs/guides/relay.md`` becomes ``guides/relay.md``).
* ``reference/<room>.md``: the API reference, one page per room of the
  package, holding every *public* module of that room (its docstring starts
  with ``Public:``) as a mkdocstrings ``::: module`` block. A new public module
  appears on its room's page with no edit here; one in a new room fails the
  build until ``ROOMS`` names it.

``mkdocs.yml`` loads this file (``hooks:``); ``tests/unit/test_docs_site.py``
checks the nav and the rooms.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "cqrs"

# Page name -> (title, the package's rooms on it; "" is the top-level modules).
ROOMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "package": ("The package, settings and errors", ("",)),
    "events": ("Events", ("events",)),
    "store": ("Event store", ("store",)),
    "aggregates": ("Aggregates", ("aggregates",)),
    "commands": ("Commands", ("commands",)),
    "queries": ("Queries", ("queries",)),
    "projections": ("Projections", ("projections",)),
    "relay": ("Relay (NATS JetStream)", ("relay",)),
    "migrations": ("Migrations (Alembic)", ("migrations",)),
    "testing": ("Testing", ("testing",)),
    "cli": ("Command line", ("cli",)),
}

_DOCS_LINK = re.compile(r"\]\((?:\./)?docs/")


def module_name(path: Path) -> str:
    """``cqrs/store/horizon.py`` -> ``cqrs.store.horizon``; a package is its ``__init__``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_public(path: Path) -> bool:
    """Whether the module's docstring starts with ``Public:``."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    return bool(doc) and doc.startswith("Public:")


def public_modules() -> dict[str, list[str]]:
    """Room ("" for top-level modules) -> its public modules, the package's own first."""
    rooms: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if "versions" in parts or not is_public(path):
            continue
        room = parts[0] if len(parts) > 1 else ""
        rooms.setdefault(room, []).append(module_name(path))
    for names in rooms.values():
        names.sort(key=lambda name: (name.count("."), name))
    return rooms


def reference_pages() -> dict[str, str]:
    """``reference/<page>.md`` -> its Markdown; raises when a room has no page."""
    modules = public_modules()
    placed = {room for _, rooms in ROOMS.values() for room in rooms}
    missing = sorted(set(modules) - placed)
    if missing:
        raise ValueError(f"rooms {missing} have public modules but no page: add them to ROOMS")
    pages = {}
    for page, (title, rooms) in ROOMS.items():
        lines = [f"# {title}", ""]
        for room in rooms:
            for name in modules.get(room, []):
                lines += [f"::: {name}", ""]
        pages[f"reference/{page}.md"] = "\n".join(lines)
    return pages


def readme_as_index() -> str:
    """``README.md`` with its links into ``docs/`` made relative to the site's root."""
    return _DOCS_LINK.sub("](", (ROOT / "README.md").read_text(encoding="utf-8"))


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages to the site's files (MkDocs 1.6 ``File.generated``)."""
    from mkdocs.structure.files import File

    generated = {"index.md": readme_as_index(), **reference_pages()}
    for uri, content in generated.items():
        files.append(File.generated(config, uri, content=content))
    return files
