"""The CLI turns toolkit and database errors into one line and an exit code, not a traceback."""

from __future__ import annotations

import pytest

from cqrs.cli.main import main


def test_unreachable_database_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["streams", "show", "x", "--database-url", "postgresql://nobody@127.0.0.1:1/x"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("cqrs: cannot connect to the database:")
    assert "--database-url" in err
    assert "Traceback" not in err


def test_missing_database_url_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CQRS_DATABASE_URL", raising=False)
    assert main(["streams", "show", "x"]) == 2
    assert (
        "pass --database-url, set CQRS_DATABASE_URL, or use --embedded DIR"
        in capsys.readouterr().err
    )


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--help"],
        ["streams", "show", "--help"],
        ["events", "tail", "--help"],
        ["projections", "run", "--help"],
        ["projections", "status", "--help"],
        ["projections", "rebuild", "--help"],
        ["projections", "dead-letters", "list", "--help"],
        ["partitions", "list", "--help"],
        ["partitions", "ensure", "--help"],
        ["partitions", "detach", "--help"],
        ["partitions", "archive", "--help"],
    ):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0, argv
        assert "usage: cqrs" in capsys.readouterr().out
