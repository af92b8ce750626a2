"""Internal: a module behind an extra says which extra to install when its package is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = "import sys; sys.modules[{name!r}] = None\n"  # makes `import name` fail


def _run(blocked: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK.format(name=blocked) + code],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_asyncio_without_greenlet_names_the_extra() -> None:
    done = _run(
        "greenlet",
        "from cqrs.errors import ConfigurationError\n"
        "try:\n    import cqrs.commands.asyncio\n"
        "except ConfigurationError as exc:\n    print(exc)\n",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pip install 'sqlalchemy-cqrs[asyncio]'" in done.stdout


@pytest.mark.parametrize("call", ["cqrs.testing.embedded_url()"])
def test_embedded_without_pgserver_names_the_extra(call: str) -> None:
    done = _run(
        "pgserver",
        "import cqrs.testing\nfrom cqrs.errors import ConfigurationError\n"
        f"try:\n    {call}\nexcept ConfigurationError as exc:\n    print(exc)\n",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pip install 'sqlalchemy-cqrs[embedded]'" in done.stdout


def test_import_cqrs_without_greenlet_and_the_async_query_side_names_the_extra() -> None:
    done = _run(
        "greenlet",
        "import cqrs\nfrom cqrs.errors import ConfigurationError\n"
        "for call in (lambda: cqrs.AsyncQueryBus(None),\n"
        "             lambda: cqrs.wait_for_async(None, 'p', '1:1').send(None)):\n"
        "    try:\n        call()\n"
        "    except ConfigurationError as exc:\n        print(exc)\n",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("pip install 'sqlalchemy-cqrs[asyncio]'") == 2
