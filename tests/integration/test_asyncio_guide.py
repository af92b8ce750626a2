"""The runnable service of docs/guides/asyncio.md runs as written: async command and
query endpoints, read-your-writes, and the projection runner in a thread."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guides" / "asyncio.md"


def test_guide_example_runs(cqrs_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert blocks, "the guide lost its python example"
    code = blocks[0] + "\nprint('guide ran')\n"
    monkeypatch.setenv("CQRS_DATABASE_URL", cqrs_database_url)  # database_url() reads it
    # a subprocess: the example registers event names in the default registry
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.endswith("guide ran\n")
