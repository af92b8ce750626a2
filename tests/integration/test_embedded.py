"""``cqrs.embedded`` starts a PostgreSQL at a chosen data directory, reuses a running one,
and stops only what it started (unless asked to keep it running); the CLI does the same."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cqrs import embedded


def _started_at(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT pg_postmaster_start_time()")).scalar())
    finally:
        engine.dispose()


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)


def _cqrs(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cqrs.cli.main", *argv], capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("embedded") / "app" / "pgdata"  # parents made on demand
    yield path
    embedded.stop(path)


def test_start_reuse_and_stop_in_one_process(data_dir: Path) -> None:
    assert embedded.running_url(data_dir) is None
    url = embedded.start(data_dir)
    assert url.startswith("postgresql+psycopg://")
    assert (data_dir / "PG_VERSION").read_text().strip() == "16"
    started = _started_at(url)
    assert embedded.start(data_dir) == url  # the same server, not a second one
    assert embedded.running_url(data_dir) == url

    # another process reuses it, and leaves it running when it exits
    done = _python(f"import cqrs.embedded as e; print(e.start({str(data_dir)!r}))")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == url
    assert _started_at(url) == started

    assert embedded.stop(data_dir) is True
    assert embedded.running_url(data_dir) is None
    assert embedded.stop(data_dir) is False


def test_a_process_that_started_the_server_stops_it_on_exit(data_dir: Path) -> None:
    assert embedded.running_url(data_dir) is None
    done = _python(
        "import sqlalchemy as sa, cqrs.embedded as e\n"
        f"url = e.start({str(data_dir)!r})\n"
        "engine = sa.create_engine(url)\n"
        "with engine.begin() as c:\n"
        "    c.execute(sa.text('CREATE TABLE IF NOT EXISTS kept (n int)'))\n"
        "    c.execute(sa.text('INSERT INTO kept VALUES (1)'))\n"
        "engine.dispose()\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert embedded.running_url(data_dir) is None  # stopped with its last user
    url = embedded.start(data_dir)  # the data is still there
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM kept")).scalar() == 1
    engine.dispose()
    embedded.stop(data_dir)


def test_cli_start_keeps_it_running_until_stop(data_dir: Path) -> None:
    started = _cqrs("embedded", "start", str(data_dir), "--json")
    assert started.returncode == 0, started.stderr[-2000:]
    url = json.loads(started.stdout)["url"]
    assert embedded.running_url(data_dir) == url  # the CLI process exited; the server did not

    listed = _cqrs("--help")
    assert "embedded" in listed.stdout
    shown = _cqrs("partitions", "list", "--embedded", str(data_dir), "--json")
    assert shown.returncode == 0, shown.stderr[-2000:]  # reached it: no toolkit schema there yet
    assert json.loads(shown.stdout) == []

    assert _cqrs("embedded", "url", str(data_dir)).stdout.strip() == url
    stopped = _cqrs("embedded", "stop", str(data_dir))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    gone = _cqrs("embedded", "url", str(data_dir))
    assert gone.returncode == 1 and "no server runs" in gone.stdout
