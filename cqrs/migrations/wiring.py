"""Public: set a service's Alembic environment up for the toolkit (``cqrs alembic init``
and ``cqrs alembic wire``).

``wire`` patches the ``alembic.ini`` and ``env.py`` that ``alembic init`` wrote
(Alembic 1.13 to today's; the ``generic``, ``async`` and ``pyproject`` templates),
in place and idempotently: a second run changes nothing. In ``alembic.ini``'s
``[alembic]`` section (with the pyproject template, ``version_locations`` goes
into ``pyproject.toml``'s ``[tool.alembic]`` as a TOML list instead) it

- adds ``cqrs.migrations:versions`` after the service's own version folder in
  ``version_locations``; the separator ``alembic init`` writes (``os``: a colon
  on POSIX, which the ``package:folder`` entry contains) becomes ``;``, set on the
  one separator line Alembic reads (``path_separator`` from Alembic 1.16,
  ``version_path_separator`` before), never a second copy of it;
- sets ``cqrs_branch`` (the label of the service's revisions), ``cqrs_models``
  (the service's declarative base, ``module:attr``) and
  ``revision_environment = true`` (so plain ``alembic revision`` is routed too);

and in ``env.py`` it imports ``cqrs.migrations``, makes ``target_metadata`` the
toolkit's metadata plus the service's, and adds
``**cqrs.migrations.configure_options(config, ...)`` to each
``context.configure(...)`` call. ``init`` runs ``alembic init`` first::

    >>> # not run: it writes alembic.ini and alembic/ in the current directory
    >>> result = init("alembic", branch="shop", models="shop.models:Base")  # doctest: +SKIP
    >>> wire("alembic.ini").changes                                       # doctest: +SKIP
    ()
"""

from __future__ import annotations

import ast
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import attrs
from alembic import __version__ as alembic_version
from alembic import command
from alembic.config import Config
from alembic.util import CommandError as AlembicCommandError
from alembic.util import coerce_resource_to_filename

from cqrs.errors import ConfigurationError
from cqrs.migrations.service import BRANCH_LABEL, BRANCH_OPTION, TOOLKIT_BRANCH, VERSIONS

TOOLKIT_LOCATION = "cqrs.migrations:versions"
"""The ``version_locations`` entry of the toolkit's branch (a ``package:folder``)."""
SECTION = "alembic"
OPTION_KEYS = (
    "include_name",
    "include_object",
    "compare_type",
    "compare_server_default",
    "transaction_per_migration",
    "process_revision_directives",
)
"""The ``context.configure`` keywords ``configure_options`` supplies."""
_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}
_LEGACY_VERSIONS_SPLIT = re.compile(r", *|(?: +)")
_LEGACY_SYS_PATH_SPLIT = re.compile(r", *|(?: +)|\:")
_HEADER = re.compile(r"^\s*\[(?P<name>[^\]]+)\]")
_OPTION = re.compile(r"^(?P<key>[^\s#;\[][^=:]*?)\s*[=:]\s*(?P<value>.*?)\s*$")
_MARK = "# cqrs alembic wire: the toolkit's branch next to yours (docs/guides/operations.md)\n"


@attrs.frozen
class WireResult:
    """What ``wire`` (or ``init``) did: the files, the branch, and one line per change
    (empty when the environment was wired already)."""

    ini: Path
    env: Path
    branch: str
    changes: tuple[str, ...]


def _alembic_at_least(major: int, minor: int) -> bool:
    parts = re.findall(r"\d+", alembic_version)[:2]
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def _refuse(message: str) -> ConfigurationError:
    return ConfigurationError(message)


@attrs.define
class _Option:
    start: int
    end: int
    value: str


class _Ini:
    """The ``[alembic]`` section of an ini file as lines, edited in place (comments kept)."""

    def __init__(self, text: str, section: str) -> None:
        self.lines = text.splitlines(keepends=True)
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += "\n"
        self.section = section
        self.inserted_mark = False

    def _bounds(self) -> tuple[int, int]:
        start = None
        for i, line in enumerate(self.lines):
            header = _HEADER.match(line)
            if header is None:
                continue
            if start is not None:
                return start, i
            if header.group("name").strip() == self.section:
                start = i + 1
        if start is None:
            raise _refuse(
                f"the ini file has no [{self.section}] section; is it the alembic.ini that "
                "`alembic init` wrote?"
            )
        return start, len(self.lines)

    def options(self) -> dict[str, _Option]:
        start, end = self._bounds()
        found: dict[str, _Option] = {}
        i = start
        while i < end:
            match = _OPTION.match(self.lines[i])
            if match is None:
                i += 1
                continue
            j = i + 1
            parts = [match.group("value")]
            while j < end and self.lines[j][:1] in (" ", "\t") and self.lines[j].strip():
                parts.append(self.lines[j].strip())
                j += 1
            found[match.group("key").strip().lower()] = _Option(i, j, "\n".join(parts).strip())
            i = j
        return found

    def get(self, key: str) -> str | None:
        option = self.options().get(key)
        return None if option is None else option.value

    def set(self, key: str, value: str, after: str = "script_location") -> bool:
        """Set ``key``; answer whether the text changed."""
        if "\n" in value:
            rendered = [f"{key} =\n", *(f"    {v}\n" for v in value.split("\n"))]
        else:
            rendered = [f"{key} = {value}\n"]
        options = self.options()
        if key in options:
            option = options[key]
            if self.lines[option.start : option.end] == rendered:
                return False
            self.lines[option.start : option.end] = rendered
            return True
        anchor = options.get(after)
        at = anchor.end if anchor is not None else self._section_end()
        if not self.inserted_mark:
            rendered = [_MARK, *rendered]
            self.inserted_mark = True
        self.lines[at:at] = rendered
        return True

    def _section_end(self) -> int:
        start, end = self._bounds()
        while end > start and not self.lines[end - 1].strip():
            end -= 1
        return end

    def text(self) -> str:
        return "".join(self.lines)


def _strip_comment(value: str | None) -> str | None:
    """A separator value without the inline comment Alembic 1.13's template puts after it."""
    if value is None:
        return None
    return re.sub(r"\s+[#;].*$", "", value).strip()


def _split(value: str, separator: str | None, legacy: re.Pattern[str]) -> list[str]:
    if separator is None:
        return [v for v in legacy.split(value) if v]
    char = _SEPARATORS.get(separator)
    if char is None:
        raise _refuse(
            f"path separator {separator!r} in alembic.ini is not one Alembic knows; use ';'"
        )
    return [v.strip() for v in value.split(char) if v.strip()]


def _join(entries: list[str], separator: str) -> str:
    if separator == "newline":
        return "\n".join(entries)
    return _SEPARATORS[separator].join(entries)


def _fits(entries: list[str], separator: str) -> bool:
    if separator == "space":
        return not any(re.search(r"\s", e) for e in entries)
    return not any(_SEPARATORS[separator] in e for e in entries)


def _is_toolkit(entry: str, here: Path) -> bool:
    if entry.strip() == TOOLKIT_LOCATION:
        return True
    try:
        path = coerce_resource_to_filename(entry.replace("%(here)s", str(here)))
    except Exception:
        return False
    return os.path.realpath(os.path.join(here, path)) == os.path.realpath(VERSIONS)


def _wire_ini(
    ini: _Ini, here: Path, branch: str, models: str | None, new_alembic: bool | None = None
) -> list[str]:
    """Patch the ``[alembic]`` section; ``new_alembic``: whether Alembic 1.16+ reads it
    (``path_separator``), default the installed one."""
    changes: list[str] = []
    if new_alembic is None:
        new_alembic = _alembic_at_least(1, 16)
    key = "path_separator" if new_alembic else "version_path_separator"
    raw_path_sep = _strip_comment(ini.get("path_separator"))
    raw_version_sep = _strip_comment(ini.get("version_path_separator"))
    old_sep = (raw_path_sep if new_alembic else None) or raw_version_sep
    script_location = ini.get("script_location")
    if not script_location:
        raise _refuse(
            f"alembic.ini's [{SECTION}] section has no script_location; run `alembic init` "
            "first (or `cqrs alembic init DIR`)"
        )
    locations = ini.get("version_locations")
    if locations:
        entries = _split(locations, old_sep, _LEGACY_VERSIONS_SPLIT)
    else:
        entries = [f"{script_location.rstrip('/')}/versions"]
    if not any(_is_toolkit(e, here) for e in entries):
        entries.append(TOOLKIT_LOCATION)
    if _is_toolkit(entries[0], here):
        raise _refuse(
            "version_locations starts with the toolkit's folder; list your own version "
            "folder first, then cqrs.migrations:versions"
        )
    new_sep = old_sep if old_sep in ("space", "newline", ";") else ";"
    assert new_sep is not None
    if not _fits(entries, new_sep):
        new_sep = ";"
    if new_sep != old_sep:
        if new_alembic and raw_path_sep != new_sep:
            sys_path = ini.get("prepend_sys_path")
            if sys_path:  # read with the separator it had, written with the new one
                old = _split(sys_path, raw_path_sep, _LEGACY_SYS_PATH_SPLIT)
                ini.set("prepend_sys_path", _join(old, new_sep))
        ini.set(key, new_sep)
        changes.append(f"{key} = {new_sep} (was {old_sep or 'unset'})")
    if ini.set("version_locations", _join(entries, new_sep)):
        changes.append(f"version_locations: {', '.join(entries)}")
    return changes + _wire_options(ini, branch, models)


def _wire_options(ini: _Ini, branch: str, models: str | None) -> list[str]:
    """``cqrs_branch``, ``cqrs_models`` and ``revision_environment`` in the ini."""
    changes: list[str] = []
    if ini.set(BRANCH_OPTION, branch, after="version_locations"):
        changes.append(f"{BRANCH_OPTION} = {branch}")
    if models is not None and ini.set("cqrs_models", models, after=BRANCH_OPTION):
        changes.append(f"cqrs_models = {models}")
    after = "cqrs_models" if ini.get("cqrs_models") is not None else BRANCH_OPTION
    if ini.set("revision_environment", "true", after=after):
        changes.append("revision_environment = true (plain `alembic revision` is routed too)")
    return changes


class _Source:
    """A Python source edited by ``(line, column)`` positions from its ``ast``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        for line in text.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col_offset: int) -> int:
        """``ast`` columns count UTF-8 bytes; answer the character offset."""
        line_start = self.starts[lineno - 1]
        line = self.text[line_start : self.starts[lineno]]
        return line_start + len(line.encode()[:col_offset].decode(errors="ignore"))


def _is_configure(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "configure"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "context"
    )


def _assigns(node: ast.stmt, name: str) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    return (
        isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == name
    )


def _wire_env(text: str, path: Path) -> tuple[str, list[str]]:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise _refuse(f"{path} is not valid Python ({exc.msg}, line {exc.lineno})") from None
    source = _Source(text)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) character offsets
    changes: list[str] = []

    imported = any(
        isinstance(node, ast.Import) and any(a.name == "cqrs.migrations" for a in node.names)
        for node in tree.body
    )
    if not imported:
        last_import = None
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                last_import = node
            elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                break
        at = 0 if last_import is None else source.starts[last_import.end_lineno or 1]
        line = "import cqrs.migrations  # the toolkit's branch, metadata and autogenerate hooks\n"
        edits.append((at, at, line))
        changes.append("env.py imports cqrs.migrations")

    targets = [n for n in tree.body if _assigns(n, "target_metadata")]
    if not targets:
        raise _refuse(
            f"{path} has no top-level `target_metadata = ...`; add "
            "`target_metadata = cqrs.migrations.target_metadata(config)` by hand"
        )
    config_defined = any(_assigns(n, "config") and n.lineno < targets[-1].lineno for n in tree.body)
    config = "config" if config_defined else "context.config"
    wired_target = any(
        "cqrs.migrations.target_metadata" in (ast.get_source_segment(text, n) or "")
        for n in targets
    )
    if not wired_target:
        last = targets[-1]
        assert isinstance(last, ast.Assign | ast.AnnAssign)
        value = last.value
        start = source.offset(last.lineno, last.col_offset)
        end = source.offset(last.end_lineno or last.lineno, last.end_col_offset or 0)
        if isinstance(value, ast.Constant) and value.value is None:
            edits.append(
                (start, end, f"target_metadata = cqrs.migrations.target_metadata({config})")
            )
        else:
            line = f"\ntarget_metadata = cqrs.migrations.target_metadata({config}, target_metadata)"
            edits.append((end, end, line))
        changes.append("env.py: target_metadata = the toolkit's metadata plus yours")

    calls = [n for n in ast.walk(tree) if _is_configure(n)]
    if not calls:
        raise _refuse(f"{path} never calls context.configure(...); is it an Alembic env.py?")
    for call in calls:
        assert isinstance(call, ast.Call)
        segment = ast.get_source_segment(text, call) or ""
        if "cqrs.migrations.configure_options" in segment:
            continue
        clash = sorted({k.arg for k in call.keywords if k.arg} & set(OPTION_KEYS))
        if clash:
            raise _refuse(
                f"{path}, line {call.lineno}: context.configure already passes "
                f"{', '.join(clash)}; combine yours with cqrs.migrations.configure_options"
                "(config, connection) by hand (docs/guides/operations.md)"
            )
        connection = next((k.value for k in call.keywords if k.arg == "connection"), None)
        connection_text = ast.get_source_segment(text, connection) if connection else None
        options = f"**cqrs.migrations.configure_options({config}"
        options += f", {connection_text})" if connection_text else ")"
        arguments: list[ast.expr | ast.keyword] = [*call.args, *call.keywords]
        close = source.offset(call.end_lineno or call.lineno, call.end_col_offset or 1) - 1
        if not arguments:
            edits.append((close, close, options))
        else:
            last_arg = max(arguments, key=lambda a: (a.end_lineno or 0, a.end_col_offset or 0))
            assert last_arg.end_lineno is not None and last_arg.end_col_offset is not None
            at = source.offset(last_arg.end_lineno, last_arg.end_col_offset)
            if "\n" in text[at:close]:
                first = arguments[0]
                line_start = source.starts[first.lineno - 1]
                indent = re.match(r"\s*", text[line_start:])
                edits.append((at, at, f",\n{indent.group(0) if indent else ''}{options}"))
            else:
                edits.append((at, at, f", {options}"))
        changes.append(f"env.py, line {call.lineno}: context.configure(..., {options})")

    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    try:
        compile(text, str(path), "exec")
    except SyntaxError as exc:  # pragma: no cover - the edits above keep the syntax
        raise _refuse(f"patching {path} failed ({exc.msg}); wire it by hand") from None
    return text, changes


def _toml_script_location(pyproject: Path) -> str | None:
    """``[tool.alembic] script_location`` of ``pyproject`` (the pyproject template)."""
    if not pyproject.is_file():
        return None
    try:
        data = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise _refuse(f"{pyproject} is not valid TOML ({exc})") from None
    location = data.get("tool", {}).get("alembic", {}).get("script_location")
    return location if isinstance(location, str) else None


def _wire_pyproject(text: str, here: Path) -> tuple[str, list[str]]:
    """Add the toolkit's folder to ``[tool.alembic] version_locations`` (a TOML list:
    no separator to pick)."""
    section = tomllib.loads(text)["tool"]["alembic"]
    locations = section.get("version_locations")
    if locations is not None:
        if any(_is_toolkit(str(e), here) for e in locations):
            return text, []
        raise _refuse(
            "pyproject.toml's [tool.alembic] lists its own version_locations; add "
            f'"{TOOLKIT_LOCATION}" after yours by hand'
        )
    entries = [f"{str(section['script_location']).rstrip('/')}/versions", TOOLKIT_LOCATION]
    line = f"version_locations = [{', '.join(json.dumps(e) for e in entries)}]\n"
    lines = text.splitlines(keepends=True)
    inside = False
    for i, current in enumerate(lines):
        header = _HEADER.match(current)
        if header is not None:
            inside = header.group("name").strip() == "tool.alembic"
        elif inside and re.match(r"^script_location\s*=", current):
            lines.insert(i + 1, line)
            return "".join(lines), [f"pyproject.toml: {line.strip()}"]
    raise _refuse(  # pragma: no cover - tomllib found it, so the line is there
        "cannot find script_location in pyproject.toml's [tool.alembic]; add "
        f"version_locations = {entries} by hand"
    )


def default_branch(directory: Path) -> str:
    """A branch label from the service's folder name: ``my-shop`` -> ``my_shop``."""
    label = re.sub(r"[^A-Za-z0-9_]", "_", directory.resolve().name).lower() or "service"
    return f"_{label}" if label[0].isdigit() else label


def wire(
    ini: str | os.PathLike[str] = "alembic.ini",
    *,
    branch: str | None = None,
    models: str | None = None,
    section: str = SECTION,
) -> WireResult:
    """Patch ``ini`` and the ``env.py`` of its ``script_location`` for the toolkit.

    ``branch`` defaults to the ini's ``cqrs_branch``, else the folder name;
    ``models`` (``module:attr``) is written as ``cqrs_models`` when given. Raises
    ``ConfigurationError`` (and writes nothing) when a file cannot be patched.
    """
    ini_path = Path(ini).resolve()
    if not ini_path.is_file():
        raise _refuse(f"{ini_path} does not exist; run `alembic init DIR` (or `cqrs alembic init`)")
    here = ini_path.parent
    document = _Ini(ini_path.read_text(), section)
    named = document.get(BRANCH_OPTION)
    if branch and named and branch != named:
        raise _refuse(
            f"{ini_path} already names the branch {named!r} ({BRANCH_OPTION}), and your "
            f"revisions carry that label; to start a new branch {branch!r} instead, edit "
            f"{BRANCH_OPTION} by hand"
        )
    label = branch or named or default_branch(here)
    if not BRANCH_LABEL.match(label) or label == TOOLKIT_BRANCH:
        raise _refuse(
            f"branch label {label!r} cannot be used: pick a name like 'shop' (letters, digits "
            f"and _), other than the toolkit's {TOOLKIT_BRANCH!r}"
        )
    if models is not None and not re.match(r"^[\w.]+:[\w.]+$", models):
        raise _refuse(f"models {models!r} must look like 'package.module:Base'")
    pyproject = here / "pyproject.toml"
    toml_location = None if document.get("script_location") else _toml_script_location(pyproject)
    pyproject_text = None
    if toml_location is not None:  # `alembic init -t pyproject` (Alembic 1.16+)
        pyproject_text, ini_changes = _wire_pyproject(pyproject.read_text(), here)
        ini_changes += _wire_options(document, label, models)
        script_location = toml_location.replace("%(here)s", str(here))
    else:
        ini_changes = _wire_ini(document, here, label, models)
        config = Config(str(ini_path), ini_section=section)
        script_location = config.get_main_option("script_location") or ""
    script_dir = Path(coerce_resource_to_filename(script_location))
    if not script_dir.is_absolute():
        script_dir = Path.cwd() / script_dir
    env_path = script_dir / "env.py"
    if not env_path.is_file():
        raise _refuse(f"{env_path} does not exist; is script_location right in {ini_path}?")
    env_text, env_changes = _wire_env(env_path.read_text(), env_path)

    if pyproject_text is not None and pyproject_text != pyproject.read_text():
        pyproject.write_text(pyproject_text)
    if document.text() != ini_path.read_text():
        ini_path.write_text(document.text())
    if env_changes:
        env_path.write_text(env_text)
    return WireResult(ini_path, env_path, label, tuple(ini_changes + env_changes))


def init(
    directory: str | os.PathLike[str],
    *,
    ini: str | os.PathLike[str] = "alembic.ini",
    template: str = "generic",
    branch: str | None = None,
    models: str | None = None,
) -> WireResult:
    """``alembic init DIRECTORY`` (writing ``ini``), then ``wire`` it.

    >>> # not run: it writes alembic.ini and alembic/ in the current directory
    >>> init("alembic", branch="shop", models="shop.models:Base").branch  # doctest: +SKIP
    'shop'
    """
    extra: dict[str, Any] = {}
    if _alembic_at_least(1, 16):  # the pyproject template writes pyproject.toml next to ini
        extra["toml_file"] = str(Path(ini).resolve().parent / "pyproject.toml")
    try:
        command.init(Config(str(ini), **extra), str(directory), template=template)
    except AlembicCommandError as exc:
        raise _refuse(f"alembic init {directory}: {exc}") from None
    return wire(ini, branch=branch, models=models)
