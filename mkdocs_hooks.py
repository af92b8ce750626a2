"""Internal: MkDocs hooks that build the pages the site has and ``docs/`` does not.

* ``index.md`` is ``README.md``, with its links to ``docs/...`` made relative
  to the site's root (``docs/guides/relay.md`` becomes ``guides/relay.md``).
* ``reference/<room>.md``: the API reference, one page per room of the
  package, holding every *public* module of that room (its docstring starts
  with ``Public:``) as a mkdocstrings ``::: module`` block. A new public module
  appears on its room's page with no edit here; one in a new room fails the
  build until ``ROOMS`` names it. A package shows its docstring only: each
  name it re-exports is documented once, in the module that defines it.
* ``SphinxRoles``, a Griffe extension (``mkdocs.yml``, mkdocstrings' options):
  the docstrings' roles (``:class:`~cqrs.errors.ConcurrencyError```) become
  Markdown code, linked (an autorefs cross-reference, checked by the strict
  build) when the name resolves to an object of a public module; the
  reStructuredText ``text::`` before an indented block reads ``text:``.

``mkdocs.yml`` loads this file (``hooks:``); ``tests/unit/test_docs_site.py``
checks the nav and the rooms.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

import griffe

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
    return doc is not None and doc.startswith("Public:")


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
                if (ROOT / name.replace(".", "/") / "__init__.py").exists():
                    lines[-1:-1] = ["    options:", "      members: false"]
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


# Under "mkdocs", so that --strict counts its warnings.
log = logging.getLogger("mkdocs.hooks.cqrs")

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj):`(~?)([^`<]+?)\s*(?:<([^>`]+)>)?`")


# "Example::" and "...as written::" end a line before an indented code block.
_LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)


def roles_to_markdown(text: str, resolve: Any) -> str:
    """Each Sphinx role in ``text`` as Markdown: ``[`title`][path]`` when
    ``resolve(name)`` answers the path of a documented object, else `` `title` ``."""

    def replace(match: re.Match[str]) -> str:
        tilde, name, target = match.groups()
        if target:
            title, name = name.strip(), target.strip()
        else:
            title = name.rsplit(".", 1)[-1] if tilde else name
        path = resolve(name.lstrip("~"))
        return f"[`{title}`][{path}]" if path else f"`{title}`"

    return _ROLE.sub(replace, text)


def _public_module(path: str) -> bool:
    """Whether the module at dotted ``path`` (a ``cqrs`` module) is a public one."""
    file = ROOT / path.replace(".", "/")
    for candidate in (file.with_suffix(".py"), file / "__init__.py"):
        if candidate.exists():
            return is_public(candidate)
    return False


class SphinxRoles(griffe.Extension):
    """Sphinx roles in docstrings to Markdown code and autorefs cross-references."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        obj.docstring.value = _LITERAL_MARKER.sub(":", obj.docstring.value)
        if ":`" not in obj.docstring.value:
            return
        module = obj.module.path
        scopes = [obj.path, module, module.rsplit(".", 1)[0], ""]

        def resolve(name: str) -> str | None:
            for scope in scopes:
                full = f"{scope}.{name}" if scope else name
                try:
                    found = loader.modules_collection[full]
                    path = found.final_target.path if found.is_alias else found.path
                    home = loader.modules_collection[path]
                except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                    continue
                return path if _public_module(home.module.path) else None
            if name.startswith("cqrs."):
                log.warning("%s: its docstring names %s, which does not exist", obj.path, name)
            return None

        obj.docstring.value = roles_to_markdown(obj.docstring.value, resolve)
