"""The README's complete example runs on real PostgreSQL: as written (it starts its own
embedded server, no database needed), and with its engine pointed at the test database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
ENGINE_LINE = 'engine = create_engine(cqrs.embedded.start(tempfile.mkdtemp(prefix="cqrs-readme-")))'


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- README_EXAMPLE.*?-->\n```python\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md lost its example block"
    return match.group(1)


def test_readme_example_runs(cqrs_database_url: str, other_database: Any) -> None:
    """On the test server, while another database there holds a writing transaction
    open (another service on a shared server): it must not hold this one back."""
    with other_database.open_transaction():
        _run_readme_example(cqrs_database_url)


def _run_readme_example(cqrs_database_url: str) -> None:
    code = readme_example()
    assert ENGINE_LINE in code
    schema = f"readme_{uuid.uuid4().hex[:8]}"
    admin = create_engine(cqrs_database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        code = code.replace(
            ENGINE_LINE,
            f"from cqrs.testing import schema_engine\n"
            f"engine = schema_engine({cqrs_database_url!r}, {schema!r})",
        )
        # a subprocess: the example registers event names in the default registry
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "[('o-1', 'shipped'), ('o-2', 'placed')]" in done.stdout
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_readme_example_runs_as_written_with_no_database(tmp_path: Path) -> None:
    from cqrs import embedded

    env = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
    env["TMPDIR"] = str(tmp_path)  # where tempfile.mkdtemp puts the server's data
    done = subprocess.run(
        [sys.executable, "-c", readme_example()], capture_output=True, text=True,
        timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    data_dirs = list(tmp_path.glob("cqrs-readme-*"))
    try:
        assert done.returncode == 0, done.stderr[-3000:]
        assert "[('o-1', 'shipped'), ('o-2', 'placed')]" in done.stdout
        assert len(data_dirs) == 1 and (data_dirs[0] / "PG_VERSION").exists()
        assert embedded.running_url(data_dirs[0]) is None  # it stopped with the program
    finally:
        for path in data_dirs:
            embedded.stop(path)
