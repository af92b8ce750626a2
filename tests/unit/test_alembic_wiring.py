"""``cqrs alembic init|wire`` (``cqrs.migrations.wiring``): the files ``alembic init``
writes, patched once, the same on a second run, for the Alembic that reads them (1.13's
``version_path_separator``, 1.16's ``path_separator``); and refusals that write nothing."""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from cqrs.cli.main import main
from cqrs.errors import ConfigurationError
from cqrs.migrations import wiring

FLOOR_INI = """\
[alembic]
# path to migration scripts
script_location = alembic
prepend_sys_path = .
version_path_separator = os  # Use os.pathsep. Default configuration used for new projects.
sqlalchemy.url = driver://user:pass@localhost/dbname
"""

NEW_INI = """\
[alembic]
script_location = %(here)s/alembic
prepend_sys_path = .:src
path_separator = os
sqlalchemy.url = driver://user:pass@localhost/dbname

[loggers]
keys = root
"""


def _options(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)  # duplicates raise
    parser.read_string(text)
    return dict(parser["alembic"])


def _wire_text(text: str, *, new_alembic: bool, tmp_path: Path) -> tuple[str, list[str]]:
    ini = wiring._Ini(text, "alembic")
    changes = wiring._wire_ini(ini, tmp_path, "shop", "shop.models:Base", new_alembic)
    return ini.text(), changes


def test_the_floor_template_gets_a_separator_that_fits(tmp_path: Path) -> None:
    """Alembic 1.13 wrote ``os`` (a colon, inside ``cqrs.migrations:versions``) with an
    inline comment it cannot read: the one line is replaced, not repeated."""
    text, changes = _wire_text(FLOOR_INI, new_alembic=False, tmp_path=tmp_path)
    options = _options(text)
    assert options["version_path_separator"] == ";"
    assert options["version_locations"] == "alembic/versions;cqrs.migrations:versions"
    assert options["cqrs_branch"] == "shop"
    assert options["cqrs_models"] == "shop.models:Base"
    assert options["revision_environment"] == "true"
    assert options["prepend_sys_path"] == "."  # 1.13 splits it its own way: untouched
    assert "path_separator" not in options
    assert changes[0] == "version_path_separator = ; (was os)"
    again, more = _wire_text(text, new_alembic=False, tmp_path=tmp_path)
    assert (again, more) == (text, [])


def test_the_new_template_keeps_its_sys_path(tmp_path: Path) -> None:
    text, _ = _wire_text(NEW_INI, new_alembic=True, tmp_path=tmp_path)
    options = _options(text)
    assert options["path_separator"] == ";"
    assert options["prepend_sys_path"] == ".;src"  # read with ':' before, with ';' now
    assert options["version_locations"] == "%(here)s/alembic/versions;cqrs.migrations:versions"
    assert "[loggers]" in text and text.index("cqrs_branch") < text.index("[loggers]")


def test_a_separator_that_fits_is_kept_and_the_branch_added_once(tmp_path: Path) -> None:
    ini = NEW_INI.replace("path_separator = os", "path_separator = space").replace(
        "prepend_sys_path = .:src",
        "prepend_sys_path = .\nversion_locations = %(here)s/alembic/versions %(here)s/more",
    )
    text, changes = _wire_text(ini, new_alembic=True, tmp_path=tmp_path)
    options = _options(text)
    assert options["path_separator"] == "space"
    assert options["version_locations"] == (
        "%(here)s/alembic/versions %(here)s/more cqrs.migrations:versions"
    )
    assert not any(c.startswith("path_separator") for c in changes)
    assert _wire_text(text, new_alembic=True, tmp_path=tmp_path) == (text, [])


def test_a_list_that_starts_with_the_toolkit_is_refused(tmp_path: Path) -> None:
    ini = NEW_INI.replace("path_separator = os", "path_separator = ;\nversion_locations = "
                          "cqrs.migrations:versions;%(here)s/alembic/versions")  # fmt: skip
    with pytest.raises(ConfigurationError, match="list your own version folder first"):
        _wire_text(ini, new_alembic=True, tmp_path=tmp_path)


@pytest.mark.parametrize("template", ["generic", "async", "pyproject"])
def test_wire_patches_what_alembic_init_wrote_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    if template == "pyproject" and not wiring._alembic_at_least(1, 16):
        pytest.skip("Alembic's pyproject template is 1.16+")
    monkeypatch.chdir(tmp_path)
    result = wiring.init("alembic", template=template, branch="shop", models="shop.models:Base")
    assert result.branch == "shop" and result.changes
    env = (tmp_path / "alembic" / "env.py").read_text()
    compile(env, "env.py", "exec")
    assert "import cqrs.migrations" in env
    assert "target_metadata = cqrs.migrations.target_metadata(config)" in env
    calls = env.count("context.configure(")
    assert calls >= 2 and env.count("**cqrs.migrations.configure_options(config") == calls
    assert "configure_options(config, connection)" in env
    ini = (tmp_path / "alembic.ini").read_text()
    _options(ini)  # one copy of every option
    config = Config(str(tmp_path / "alembic.ini"))
    assert config.get_main_option("cqrs_branch") == "shop"

    assert wiring.wire(tmp_path / "alembic.ini").changes == ()
    assert (tmp_path / "alembic" / "env.py").read_text() == env
    assert (tmp_path / "alembic.ini").read_text() == ini
    if template == "pyproject":  # a TOML list: no separator to pick
        toml = tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["alembic"]
        assert toml["version_locations"] == [
            "%(here)s/alembic/versions",
            "cqrs.migrations:versions",
        ]


def test_a_pyproject_list_of_its_own_is_left_to_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not wiring._alembic_at_least(1, 16):
        pytest.skip("Alembic's pyproject template is 1.16+")
    monkeypatch.chdir(tmp_path)
    wiring.init("alembic", template="pyproject", branch="shop")
    (tmp_path / "pyproject.toml").write_text(
        (tmp_path / "pyproject.toml").read_text().replace("\nversion_locations = [", "\n# [")
    )
    toml = tmp_path / "pyproject.toml"
    toml.write_text(toml.read_text().replace(
        'script_location = "%(here)s/alembic"',
        'script_location = "%(here)s/alembic"\nversion_locations = ["%(here)s/alembic/versions"]',
    ))  # fmt: skip
    before = toml.read_text(), (tmp_path / "alembic.ini").read_text()
    with pytest.raises(
        ConfigurationError, match=re.escape('add "cqrs.migrations:versions" after yours')
    ):
        wiring.wire("alembic.ini", branch="shop")
    assert (toml.read_text(), (tmp_path / "alembic.ini").read_text()) == before


def _init(tmp_path: Path) -> tuple[Path, Path]:
    ini = tmp_path / "alembic.ini"
    command.init(Config(str(ini)), str(tmp_path / "alembic"))
    return ini, tmp_path / "alembic" / "env.py"


def test_an_env_py_with_its_own_metadata_keeps_it(tmp_path: Path) -> None:
    ini, env = _init(tmp_path)
    env.write_text(env.read_text().replace("target_metadata = None", "target_metadata = Base"))
    wiring.wire(ini, branch="shop")
    text = env.read_text()
    assert "target_metadata = Base\ntarget_metadata = cqrs.migrations.target_metadata(" in text
    assert "(config, target_metadata)" in text


def test_a_hook_env_py_passes_itself_is_refused_and_nothing_written(tmp_path: Path) -> None:
    ini, env = _init(tmp_path)
    env.write_text(
        env.read_text().replace(
            "connection=connection, target_metadata=target_metadata",
            "connection=connection, target_metadata=target_metadata, include_object=mine",
        )
    )
    before = ini.read_text(), env.read_text()
    with pytest.raises(ConfigurationError, match="already passes include_object"):
        wiring.wire(ini, branch="shop")
    assert (ini.read_text(), env.read_text()) == before


def test_branch_labels_that_cannot_work_are_refused(tmp_path: Path) -> None:
    ini, _ = _init(tmp_path)
    with pytest.raises(ConfigurationError, match="other than the toolkit's 'cqrs'"):
        wiring.wire(ini, branch="cqrs")
    with pytest.raises(ConfigurationError, match="branch label '2-shop'"):
        wiring.wire(ini, branch="2-shop")
    wiring.wire(ini, branch="shop")
    with pytest.raises(ConfigurationError, match="already names the branch 'shop'"):
        wiring.wire(ini, branch="store")


def test_the_default_branch_is_the_folder_name(tmp_path: Path) -> None:
    service = tmp_path / "order-service"
    service.mkdir()
    ini, _ = _init(service)
    assert wiring.wire(ini).branch == "order_service"


def test_the_command_reports_a_missing_ini_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alembic", "wire", "--ini", str(tmp_path / "nope.ini")]) == 2
    err = capsys.readouterr().err
    assert "does not exist; run `alembic init DIR`" in err and "Traceback" not in err


def test_the_command_prints_what_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["alembic", "init", "alembic", "--branch", "shop", "--json"]) == 0
    out = capsys.readouterr().out
    report = out[out.index("{") :]
    assert '"branch": "shop"' in report and "cqrs_branch = shop" in report
    assert main(["alembic", "wire"]) == 0
    assert "wired already (branch shop)" in capsys.readouterr().out


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("page", ["README.md", "docs/guides/operations.md"])
def test_the_docs_show_the_lines_wire_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    """The ini lines the docs tell a user to add are the ones ``wire`` writes."""
    text = (ROOT / page).read_text()
    block = re.search(r"```ini\n(version_locations = .*?)```", text, re.DOTALL)
    assert block, f"{page} lost its alembic.ini block"
    shown = [re.sub(r"\s+#.*$", "", line) for line in block.group(1).splitlines()]
    monkeypatch.chdir(tmp_path)
    wiring.init("alembic", branch="shop", models="shop.models:Base")
    written = (tmp_path / "alembic.ini").read_text().splitlines()
    if not wiring._alembic_at_least(1, 16):  # the 1.13 template's relative script_location
        shown = [line.replace("%(here)s/alembic/versions", "alembic/versions") for line in shown]
    assert set(shown) <= set(written), (shown, written)
