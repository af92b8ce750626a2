"""The ``cqrs`` command never shows a traceback or a password, and what it prints cannot
drive the terminal: each way it can be given bad input, run as an operator runs it (a
subprocess), ends in one ``cqrs: ...`` line and the documented exit code; every command
is run with URLs holding a password, which appears in neither stdout nor stderr."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_models import Base
from sqlalchemy import Engine, make_url, text

from cqrs.cli.common import Exit
from cqrs.cli.main import build_parser, main
from cqrs.store import partitions

HERE = Path(__file__).resolve().parent
SECRET = "S3cr3t"
MODULE = "cli_models:projections"


def _scoped_url(engine: Engine, base: str, *, password: str | None = None) -> str:
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    if password is not None:
        url = url.set(password=password)
    return url.render_as_string(hide_password=False)


def _cqrs(
    *args: str | bytes, cwd: Path = HERE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cqrs.cli.main", *args],
        capture_output=True, text=True, timeout=180, cwd=cwd, errors="backslashreplace",
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]), **(env or {})},
    )  # fmt: skip


def _one_line_failure(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    return done.stderr


@pytest.fixture
def url(cqrs_engine: Engine, cqrs_database_url: str) -> Iterator[str]:
    Base.metadata.create_all(cqrs_engine)
    yield _scoped_url(cqrs_engine, cqrs_database_url)


# -- bad URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("postgresql://app:S3cr3t@db:notaport/shop", "cannot be parsed"),
        ("postgresql://app:S3cr3t@[::1/shop", "cannot be parsed"),
        ("mysql://root:S3cr3t@db/shop", "is not a PostgreSQL URL"),
    ],
)
def test_a_bad_url_is_a_usage_error_without_its_password(bad: str, says: str) -> None:
    for done in (
        _cqrs("projections", "status", "--database-url", bad),
        _cqrs("projections", "status", env={"CQRS_DATABASE_URL": bad}),
    ):
        err = _one_line_failure(done, Exit.USAGE)
        assert err.startswith("cqrs: database URL") and says in err
        assert SECRET not in err + done.stdout
        assert len(err.strip().splitlines()) == 1


# -- --module ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "spec", "says"),
    [
        (None, "no_such_module_xyz:projections", "cannot import 'no_such_module_xyz'"),
        ("raise RuntimeError('boom at import')\n", "mod:projections", "raised RuntimeError"),
        ("def broken(:\n", "mod:projections", "does not compile"),
        ("projections = 42\n", "mod:projections", "does not name a Projection"),
        ("import os\nprojections = os.getpid\n", "mod:projections", "does not name a Projection"),
        ("def projections():\n    raise KeyError('x')\n", "mod:projections", "raised KeyError"),
        (None, ":projections", "names no module"),
    ],
)
def test_a_bad_module_is_a_usage_error(
    tmp_path: Path, source: str | None, spec: str, says: str
) -> None:
    if source is not None:
        (tmp_path / "mod.py").write_text(source)
    for argv in (
        ["projections", "run", "--once", "--module", spec],
        ["projections", "rebuild", "p", "--module", spec],
        ["relay", "run", "--once", "--module", spec, "--nats-url", "nats://127.0.0.1:1"],
    ):
        done = _cqrs(*argv, "--database-url", "postgresql://u@127.0.0.1:1/x", cwd=tmp_path)
        err = _one_line_failure(done, Exit.USAGE)
        assert err.startswith("cqrs: ") and says in err, err


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("poll", ["0", "-1", "nan", "inf", "soon"])
def test_a_poll_that_is_not_a_positive_number_is_refused_by_argparse(poll: str) -> None:
    for group in ("projections", "relay"):
        done = _cqrs(group, "run", "--module", MODULE, f"--poll={poll}")
        err = _one_line_failure(done, Exit.USAGE)
        assert "usage: cqrs" in err and "argument --poll" in err


def test_usage_errors_escape_and_mask_what_they_quote() -> None:
    done = _cqrs("streams", "show", "x", "\x1b[2J", f"postgresql://app:{SECRET}@db/shop")
    err = _one_line_failure(done, Exit.USAGE)
    assert "unrecognized arguments: \\x1b[2J postgresql://app:***@db/shop" in err
    assert "\x1b" not in err and SECRET not in err


def test_a_non_utf8_argument_is_a_usage_error(url: str) -> None:
    done = _cqrs("streams", "show", b"order-\xff\xfe", "--database-url", url)
    err = _one_line_failure(done, Exit.USAGE)
    assert "is not valid UTF-8" in err and "order-\\udcff\\udcfe" in err


def test_archiving_into_a_missing_directory_is_refused(url: str, cqrs_engine: Engine) -> None:
    with cqrs_engine.connect() as conn:
        name = partitions.list_partitions(conn)[0].name
    target = f"/no/such/dir/{uuid.uuid4().hex}/{name}.csv"
    done = _cqrs("partitions", "archive", name, "--to-file", target, "--database-url", url)
    err = _one_line_failure(done, Exit.RUNTIME)
    assert "does not exist" in err and "/no/such/dir" in err
    with cqrs_engine.connect() as conn:  # nothing half-done: still attached
        assert name in [p.name for p in partitions.list_partitions(conn)]


def test_an_undecodable_row_is_one_line(url: str, cqrs_engine: Engine) -> None:
    with cqrs_engine.begin() as conn:
        conn.execute(text("INSERT INTO streams (stream_id, stream_type, version) "
                          "VALUES ('bad-row', 'bad', 1)"))  # fmt: skip
        conn.execute(
            text("INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
                 "data, metadata) VALUES (gen_random_uuid(), 'bad-row', 'bad', 1, 'x', "
                 "'{}', 'null')")
        )  # fmt: skip
    shown = _cqrs("streams", "show", "bad-row", "--database-url", url)
    _one_line_failure(shown, Exit.RUNTIME)
    assert "UNREADABLE: " in shown.stdout  # the row is listed, the command exits 1
    tailed = _cqrs("events", "tail", "--no-follow", "--database-url", url)
    err = _one_line_failure(tailed, Exit.RUNTIME)
    assert err.startswith("cqrs: warning: skipped the unreadable event")  # one line per row
    assert len(err.strip().splitlines()) == 1


# -- control characters in stored values ---------------------------------------------------

EVIL_STREAM = "evil\x1b[2J\x1b]0;pwned\x07\nFORGED LINE"
EVIL_TYPE = "type\x9b31m\u202e"


def test_control_characters_are_escaped_in_text_output(url: str, cqrs_engine: Engine) -> None:
    with cqrs_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO streams (stream_id, stream_type, version) VALUES (:s, :t, 1)"),
            {"s": EVIL_STREAM, "t": EVIL_TYPE},
        )
        conn.execute(
            text("INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
                 "data) VALUES (gen_random_uuid(), :s, :t, 1, :t, '{\"x\": \"\\u001b[31m\"}')"),
            {"s": EVIL_STREAM, "t": EVIL_TYPE},
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO checkpoints (projection, shard, last_error) VALUES (:p, 0, :e)"),
            {"p": "proj\x1b[2J\nFORGED", "e": "boom\x1b[2J\nFORGED"},
        )
        conn.execute(
            text("INSERT INTO dead_letters (projection, stream_id, event_id, transaction_id, "
                 "global_position, event_type, error) VALUES (:p, :s, gen_random_uuid(), "
                 "'1', 1, :t, :e)"),
            {"p": "proj\x1b[2J\nFORGED", "s": EVIL_STREAM, "t": EVIL_TYPE, "e": "x\nFORGED"},
        )  # fmt: skip
    cases = {
        ("streams", "show", EVIL_STREAM): 2,  # the stream line and one event line
        ("events", "tail", "--no-follow"): 1,
        ("projections", "status"): 2,  # header and the shard
        ("projections", "dead-letters", "list"): 1,
    }
    for argv, lines in cases.items():
        done = _cqrs(*argv, "--database-url", url)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        for char in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert char not in out, (argv, out)
        assert len(out.splitlines()) == lines, (argv, out)
        assert not any(line.startswith("FORGED") for line in out.splitlines())
        assert "\\x1b[2J" in out or "\\x9b" in out


# -- no password anywhere ------------------------------------------------------------------


def _leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
    tuple[tuple[str, ...], argparse.ArgumentParser]
]:  # fmt: skip
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaf_commands(sub, (*path, name))


def _argv(path: tuple[str, ...], parser: argparse.ArgumentParser) -> list[str]:
    """A runnable command line: positionals filled in, required options given, and the
    options that keep a command running (follow, run forever) turned off."""
    argv = list(path)
    for action in parser._actions:
        if not action.option_strings and action.nargs in (None, "+"):
            argv.append("1" if action.type is int else "cli_tally")
    options = set().union(*(a.option_strings for a in parser._actions))
    relay = path[0] == "relay"
    fill = {
        "--module": "relay_domain:cli_relays" if relay else MODULE,
        "--projection": "cli_tally",
        "--nats-url": f"nats://relay:{SECRET}@127.0.0.1:1",
        "--max-wait": "1",
    }
    for option, value in fill.items():
        if option in options:
            argv += [option, value]
    argv += [flag for flag in ("--once", "--no-follow") if flag in options]
    return argv


def test_no_command_shows_a_password(
    url: str,
    cqrs_engine: Engine,
    cqrs_database_url: str,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(HERE)
    monkeypatch.setenv("RL_PREFIX", "scan")
    monkeypatch.setenv("RL_STREAM", "SCAN")
    monkeypatch.delenv("CQRS_DATABASE_URL", raising=False)
    urls = [
        _scoped_url(cqrs_engine, cqrs_database_url, password=SECRET),  # trust auth: it runs
        f"postgresql://app:{SECRET}@127.0.0.1:1/shop",  # unreachable
        f"postgresql://app:{SECRET}@db:notaport/shop",  # unparseable
        f"mysql://root:{SECRET}@db/shop",  # not PostgreSQL
    ]
    commands = [
        (path, sub)
        for path, sub in _leaf_commands(build_parser())
        if "--database-url" in {s for a in sub._actions for s in a.option_strings}
    ]
    assert len(commands) >= 12, [p for p, _ in commands]
    for path, sub in commands:
        for where in urls:
            for how in ("option", "env"):
                argv = _argv(path, sub)
                if how == "option":
                    argv += ["--database-url", where]
                else:
                    monkeypatch.setenv("CQRS_DATABASE_URL", where)
                try:
                    main(argv)
                except SystemExit:
                    pass
                finally:
                    monkeypatch.delenv("CQRS_DATABASE_URL", raising=False)
                out, err = capfd.readouterr()
                assert SECRET not in out and SECRET not in err, (argv, out, err)
                assert "Traceback" not in err, (argv, err)
