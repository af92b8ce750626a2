"""Internal: the curated public API is pinned, and every module says what it is.

When a name is added to or removed from ``cqrs.__all__``, update ``PUBLIC`` here in
the same change: the diff then shows the API change on purpose.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import cqrs

PUBLIC = [
    "ANY",
    "E",
    "NO_STREAM",
    "START",
    "STREAM_EXISTS",
    "Aggregate",
    "AppendOrderConflict",
    "AppendResult",
    "AsyncQueryBus",
    "CommandBus",
    "CommandOutcome",
    "ConcurrencyError",
    "CqrsError",
    "Event",
    "EventRegistry",
    "EventStore",
    "ExpectedVersion",
    "FailurePolicy",
    "InvalidInput",
    "NewEvent",
    "Position",
    "ProcessManager",
    "Projection",
    "ProjectionContext",
    "ProjectionRunner",
    "Query",
    "QueryBus",
    "QueryHandlers",
    "ReadModelTimeout",
    "RecordedEvent",
    "Repository",
    "RetryOnConflict",
    "Settings",
    "SnapshotIgnored",
    "StreamAppend",
    "StreamInfo",
    "StreamNotFound",
    "UnitOfWork",
    "applies",
    "create_schema",
    "default_registry",
    "drop_schema",
    "event",
    "install_notify",
    "metadata",
    "run_in_transaction",
    "uuid7",
    "wait_for",
    "wait_for_async",
]


ROOT = Path(cqrs.__file__).parent


def _sources() -> dict[str, ast.Module]:
    """Every module of the package, parsed, not imported (some, like Alembic's env.py,
    only run inside their host). Alembic revision scripts keep Alembic's own format."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        if "versions" in relative.parts:
            continue
        name = ".".join(relative.parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(), filename=str(path))
    return found


SOURCES = _sources()
WITH_ALL = sorted(
    name
    for name, tree in SOURCES.items()
    if any(
        isinstance(node, ast.Assign)
        and any(getattr(t, "id", None) == "__all__" for t in node.targets)
        for node in tree.body
    )
)


def test_all_is_pinned() -> None:
    assert cqrs.__all__ == PUBLIC


def _isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions; each group alphabetical (isort style)."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_unique() -> None:
    assert cqrs.__all__ == sorted(set(cqrs.__all__), key=_isort_key)


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from cqrs import {name}", namespace)
    assert namespace[name] is getattr(cqrs, name)


def test_nothing_public_is_left_out_of_all() -> None:
    exported = {
        name
        for name, value in vars(cqrs).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert exported <= set(cqrs.__all__)  # names load lazily: a subset until used
    assert set(dir(cqrs)) >= set(cqrs.__all__)


def test_import_cqrs_commands_leaves_the_runner_unloaded() -> None:
    """A web worker that sends commands does not pay for the projection runner, the CLI,
    Alembic or the relay (the command side reaches projections only through a protocol)."""
    code = (
        "import sys, cqrs, cqrs.commands; "
        "from cqrs import CommandBus, EventStore, UnitOfWork; "
        "print(sorted(m for m in sys.modules if m.startswith(('cqrs.projections', "
        "'cqrs.cli', 'cqrs.migrations', 'cqrs.relay', 'alembic'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        cqrs.Nope  # noqa: B018


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_module_docstring_says_public_or_internal(name: str) -> None:
    first = (ast.get_docstring(SOURCES[name]) or "").strip().splitlines()[:1]
    assert first and first[0].startswith(("Public:", "Internal:")), (
        f"{name}: the first docstring line must start with 'Public:' or 'Internal:'"
    )


@pytest.mark.parametrize("name", WITH_ALL)
def test_every_all_entry_exists(name: str) -> None:
    module = importlib.import_module(name)
    missing = [entry for entry in module.__all__ if not hasattr(module, entry)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"


RELAY_PUBLIC = [
    "Inbox",
    "IncomingMessage",
    "IntegrationEvent",
    "JetStreamPublisher",
    "OutgoingMessage",
    "Relay",
    "RelayRunner",
    "RetryPolicy",
    "default_subject",
    "ensure_stream",
]


def test_relay_all_is_pinned() -> None:
    import cqrs.relay

    assert cqrs.relay.__all__ == RELAY_PUBLIC
    assert "relay" not in cqrs.__all__  # an extra: `import cqrs` never needs nats-py
