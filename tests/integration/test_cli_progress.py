"""``cqrs projections rebuild`` shows its progress as the operator's stream allows: plain
lines through a pipe, a tqdm bar on a terminal (plain lines there too without tqdm), and
nothing but the JSON document with ``--json``."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_models import Base, Noted, store
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session

HERE = Path(__file__).resolve().parent
REBUILD = ["projections", "rebuild", "cli_tally", "--module", "cli_models:projections"]
CLI = "import sys\n{block}from cqrs.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
NO_TQDM = "sys.modules['tqdm'] = None  # the cli extra is not installed\n"


@pytest.fixture(scope="module")
def url(cqrs_database_url: str) -> Iterator[str]:
    """A schema holding 1,200 events of 12 streams: three batches of the rebuild."""
    from cqrs.testing import isolated_schema

    with isolated_schema(cqrs_database_url, metadata=[Base.metadata]) as engine:
        _fill(engine)
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        options = {"options": f"-csearch_path={schema}"}
        scoped = make_url(cqrs_database_url).update_query_dict(options)
        yield scoped.render_as_string(hide_password=False)


def _fill(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        for s in range(12):
            store.append(session, f"note-{s}", [Noted(n) for n in range(100)])


def _command(url: str, *args: str, tqdm: bool = True) -> list[str]:
    code = CLI.format(block="" if tqdm else NO_TQDM)
    return [sys.executable, "-c", code, *REBUILD, *args, "--database-url", url]


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "100"}


def _piped(url: str, *args: str, tqdm: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(url, *args, tqdm=tqdm), capture_output=True, text=True, timeout=180,
        cwd=HERE, env=_env(),
    )  # fmt: skip


def _on_a_terminal(url: str, *, tqdm: bool) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (stdout piped): exit code, stdout, terminal."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        _command(url, tqdm=tqdm), stdout=subprocess.PIPE, stderr=slave, cwd=HERE, env=_env()
    )
    os.close(slave)
    seen = b""
    while True:  # drain the terminal while the command runs, so it never blocks on it
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed: the command has ended
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=180), out, seen.decode(errors="replace")


LINE = r"rebuild cli_tally: \d+/\d+ events \(\d+%\)"


def test_through_a_pipe_plain_lines(url: str) -> None:
    done = _piped(url)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert len(lines) >= 3 and all(re.match(LINE, line) for line in lines), done.stderr
    assert re.fullmatch(LINE.replace(r"\d+/\d+", "1200/1200") + r" in .*", lines[-1])
    assert "\r" not in done.stderr
    assert done.stdout.startswith("rebuilt cli_tally from 1200 events")


def test_with_json_nothing_but_json(url: str) -> None:
    done = _piped(url, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    assert json.loads(done.stdout)["events"] == 1200


def test_without_tqdm_through_a_pipe(url: str) -> None:
    done = _piped(url, tqdm=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.match(LINE, done.stderr.splitlines()[-1])


def test_on_a_terminal_a_bar_or_without_tqdm_plain_lines(url: str) -> None:
    pytest.importorskip("tqdm")
    code, out, terminal = _on_a_terminal(url, tqdm=True)
    assert code == 0, terminal[-3000:]
    assert "\r" in terminal and "1200/1200" in terminal and "100%|" in terminal
    assert out.startswith("rebuilt cli_tally")

    code, out, terminal = _on_a_terminal(url, tqdm=False)
    assert code == 0, terminal[-3000:]
    lines = [line for line in terminal.replace("\r\n", "\n").splitlines() if line]
    assert lines and all(re.match(LINE, line) for line in lines), terminal
    assert out.startswith("rebuilt cli_tally")
