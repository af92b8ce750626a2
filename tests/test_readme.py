"""The README's complete example runs, unchanged but for its engine, on real PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
ENGINE_LINE = 'engine = create_engine("postgresql+psycopg://localhost/shop")  # your database'


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- README_EXAMPLE.*?-->\n```python\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md lost its example block"
    return match.group(1)


def test_readme_example_runs(cqrs_database_url: str) -> None:
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
