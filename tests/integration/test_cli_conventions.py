"""The ``cqrs`` command's conventions, run as an operator runs it (a subprocess, or main()):
exit codes, JSON Lines from ``events tail``, a quiet exit into ``| head``, one checkpoint
notation, ``run --once`` owning up to parked events, ``status`` after a skip, the
``partitions list`` header and the refusal to detach a hash partition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_models import Base, Noted, store
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from cqrs.cli.common import Exit
from cqrs.cli.main import main
from cqrs.config import Settings
from cqrs.testing.database import isolated_schema

HERE = Path(__file__).resolve().parent
MODULE = "cli_models:projections"


def _url(engine: Engine, base: str) -> str:
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    scoped = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False)


def _cqrs(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cqrs.cli.main", *args, "--database-url", url],
        capture_output=True, text=True, timeout=180, cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )  # fmt: skip


def _json(done: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert done.returncode == code, done.stderr[-3000:]
    return json.loads(done.stdout)


def _append(engine: Engine, stream_id: str, *events: Noted) -> None:
    with Session(engine) as s, s.begin():
        store.append(s, stream_id, list(events))


@pytest.fixture
def url(cqrs_engine: Engine, cqrs_database_url: str) -> Iterator[str]:
    Base.metadata.create_all(cqrs_engine)
    yield _url(cqrs_engine, cqrs_database_url)


# -- exit codes ------------------------------------------------------------------------


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["events", "tail", "--no-such-option"])
    assert exit_.value.code == Exit.USAGE == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_refusal_by_the_toolkit_exits_1(url: str) -> None:
    done = _cqrs(url, "streams", "show", "no-such-stream")
    assert done.returncode == Exit.RUNTIME == 1
    assert "cqrs-stream-not-found" in done.stderr and "Traceback" not in done.stderr


def test_a_refusal_by_the_database_exits_1(cqrs_database_url: str) -> None:
    admin = create_engine(cqrs_database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('CREATE SCHEMA IF NOT EXISTS "cli_empty_schema"'))
    try:
        scoped = make_url(cqrs_database_url).update_query_dict(
            {"options": "-csearch_path=cli_empty_schema"}
        )
        done = _cqrs(scoped.render_as_string(False), "projections", "status")
        assert done.returncode == Exit.RUNTIME
        assert done.stderr.startswith("cqrs: the database refused:")
        assert "alembic upgrade heads" in done.stderr
    finally:
        with admin.connect() as conn:
            conn.execute(text('DROP SCHEMA "cli_empty_schema" CASCADE'))
        admin.dispose()


def test_an_unreachable_database_exits_3() -> None:
    done = _cqrs("postgresql://nobody@127.0.0.1:1/x", "partitions", "list")
    assert done.returncode == Exit.UNREACHABLE == 3
    assert done.stderr.startswith("cqrs: cannot connect to the database:")


# -- events tail -------------------------------------------------------------------------


def test_events_tail_json_is_one_object_per_line(url: str, cqrs_engine: Engine) -> None:
    _append(cqrs_engine, "a", Noted(1), Noted(2))
    _append(cqrs_engine, "b", Noted(3))
    done = _cqrs(url, "events", "tail", "--no-follow", "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    rows = [json.loads(line) for line in lines]
    assert [(r["stream_id"], r["version"], r["data"]["n"]) for r in rows] == [
        ("a", 1, 1), ("a", 2, 2), ("b", 1, 3),
    ]  # fmt: skip
    text_lines = _cqrs(url, "events", "tail", "--no-follow").stdout.splitlines()
    assert len(text_lines) == 3 and "cli.noted" in text_lines[0]


def test_events_tail_into_head_stops_quietly(url: str, cqrs_engine: Engine) -> None:
    for i in range(20):  # ~2000 lines: far more than a pipe buffer holds
        _append(cqrs_engine, f"s-{i}", *[Noted(n) for n in range(100)])
    tail = subprocess.Popen(
        [sys.executable, "-m", "cqrs.cli.main", "events", "tail", "--no-follow", "--json",
         "--database-url", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE,
    )  # fmt: skip
    assert tail.stdout is not None and tail.stderr is not None
    first = tail.stdout.readline()
    assert json.loads(first)["stream_id"] == "s-0"
    tail.stdout.close()  # what `head -n 1` does
    code = tail.wait(timeout=120)
    err = tail.stderr.read()
    assert code == Exit.PIPE == 141
    assert err == "", err


# -- checkpoints, run --once, status, dead letters ---------------------------------------


def _status(url: str) -> dict[str, Any]:
    data = _json(_cqrs(url, "projections", "status", "--json"))
    (shard,) = [s for s in data["shards"] if s["projection"] == "cli_tally"]
    return dict(shard)


def test_one_checkpoint_notation_in_text_json_and_tail(url: str, cqrs_engine: Engine) -> None:
    _append(cqrs_engine, "a", Noted(1), Noted(2))
    assert _json(_cqrs(url, "projections", "run", "--once", "--module", MODULE, "--json")) == {
        "events": 2, "parked": 0, "dead_letters": [],
    }  # fmt: skip
    token = _status(url)["checkpoint"]
    assert token.endswith(":end"), token  # drained: every event before the xid applied
    text_out = _cqrs(url, "projections", "status").stdout
    (line,) = [ln for ln in text_out.splitlines() if ln.startswith("cli_tally")]
    assert token in line.split()

    _append(cqrs_engine, "b", Noted(3))  # the token is a cursor `events tail` takes back
    after = _cqrs(url, "events", "tail", "--no-follow", "--json", "--after", token)
    assert [json.loads(x)["stream_id"] for x in after.stdout.splitlines()] == ["b"]


def test_run_once_says_it_parked_events_and_exits_4(url: str, cqrs_engine: Engine) -> None:
    _append(cqrs_engine, "good", Noted(1))
    _append(cqrs_engine, "bad", Noted(2, poison=True), Noted(3))
    done = _cqrs(url, "projections", "run", "--once", "--module", MODULE)
    assert done.returncode == Exit.PARKED == 4, done.stderr
    assert "parked 2 events of 1 streams" in done.stdout and "(bad)" in done.stdout
    assert "dead-letters list" in done.stdout
    again = _json(_cqrs(url, "projections", "run", "--once", "--module", MODULE, "--json"))
    assert again["parked"] == 0  # nothing new parked: success


def test_status_forgets_the_error_once_its_dead_letters_are_skipped(
    url: str, cqrs_engine: Engine
) -> None:
    _append(cqrs_engine, "bad", Noted(1, poison=True))
    _append(cqrs_engine, "good", Noted(2))
    assert _cqrs(url, "projections", "run", "--once", "--module", MODULE).returncode == 4
    shard = _status(url)
    assert shard["parked"] == 1 and "poisoned event n=1" in (shard["last_error"] or "")
    assert "poisoned" in _cqrs(url, "projections", "status").stdout

    letters = _json(_cqrs(url, "projections", "dead-letters", "list", "--json"))
    ids = [str(d["id"]) for d in letters]
    skipped = _cqrs(url, "projections", "dead-letters", "skip", *ids, "--projection", "cli_tally")
    assert skipped.returncode == 0, skipped.stderr
    shard = _status(url)
    assert shard["parked"] == 0 and shard["last_error"] is None
    assert "poisoned" not in _cqrs(url, "projections", "status").stdout


# -- partitions ----------------------------------------------------------------------------


def test_partitions_list_has_a_header_row(url: str) -> None:
    done = _cqrs(url, "partitions", "list")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["partition", "state", "rows", "(estimate)", "size", "bounds"]
    assert rows and all(r.startswith("events_y") for r in rows)
    exact = _cqrs(url, "partitions", "list", "--exact").stdout.splitlines()[0]
    assert exact.split() == ["partition", "state", "rows", "size", "bounds"]


def test_partitions_detach_refuses_a_hash_partition(cqrs_database_url: str) -> None:
    settings = Settings(partitioning="hash", hash_partitions=2)
    with isolated_schema(cqrs_database_url, settings) as engine:
        url = _url(engine, cqrs_database_url)
        for extra in ([], ["--force"], ["--no-concurrently"]):
            done = _cqrs(url, "partitions", "detach", "events_h000_of_002", *extra)
            assert done.returncode == Exit.RUNTIME, done.stderr
            assert "is a hash partition" in done.stderr and "cqrs-input" in done.stderr
        listed = _json(_cqrs(url, "partitions", "list", "--json"))
        assert [p["attached"] for p in listed] == [True, True]
