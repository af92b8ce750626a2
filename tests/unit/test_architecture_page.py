"""Internal: docs/architecture.md names every module of the package, so the one page that
shows the rooms stays true as modules come and go."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"


def _modules() -> list[str]:
    found = []
    for path in sorted((ROOT / "cqrs").rglob("*.py")):
        relative = path.relative_to(ROOT / "cqrs")
        if "versions" in relative.parts or path.name == "__init__.py":
            continue
        found.append(relative.as_posix())
    return found


def _rooms_section() -> str:
    text = PAGE.read_text()
    return text.split("## Rooms", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("module", _modules())
def test_every_module_is_on_the_architecture_page(module: str) -> None:
    """The tree under "Rooms" lists each module by file name inside its room's folder."""
    rooms = _rooms_section()
    folder, _, name = module.rpartition("/")
    if not folder:
        assert re.search(rf"(?m)^\S.*\b{re.escape(name)}\b", rooms) or re.search(
            rf"(?m)^├── {re.escape(name)}|^└── {re.escape(name)}", rooms
        ), f"docs/architecture.md does not list cqrs/{module}"
        return
    # the folder's block: from "folder/" to the next top-level entry of the tree
    top = folder.split("/")[0]
    block = re.search(rf"(?ms)^[├└]── {re.escape(top)}/.*?(?=^[├└]── |\Z|^```)", rooms)
    assert block, f"docs/architecture.md has no room cqrs/{top}/"
    assert re.search(rf"(?<![\w.]){re.escape(name)}\b", block.group(0)), (
        f"docs/architecture.md does not list cqrs/{module} in the {top}/ room"
    )
