"""The runnable example of docs/guides/commands.md runs as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "commands.md"


def test_guide_example_runs(cqrs_database_url: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert blocks, "the guide lost its python example"
    module = types.ModuleType("commands_guide")  # as if run as a script of its own
    sys.modules[module.__name__] = module
    try:
        exec(compile(blocks[0], str(GUIDE), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    assert module.order.status == "shipped"
