"""Internal: the wheel and sdist a user installs carry the name, metadata, license and
docs promised in the README, and ``cqrs --version`` reports the installed version."""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import cqrs
from cqrs.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-d", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


def test_version_comes_from_the_installed_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    assert cqrs.__version__ == metadata.version("sqlalchemy-cqrs")
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"cqrs {cqrs.__version__} (sqlalchemy-cqrs)"


def test_version_without_an_installation_is_a_placeholder() -> None:
    from cqrs._version import installed_version

    assert installed_version("sqlalchemy-cqrs-never-installed") == "0+unknown"


def test_wheel_metadata_license_and_docs(built: dict[str, Path]) -> None:
    assert built["wheel"].name.startswith("sqlalchemy_cqrs-")
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(wheel.read(meta_name))
        license_text = next(
            wheel.read(n).decode() for n in names if n.endswith(".dist-info/licenses/LICENSE")
        )
    assert meta["Name"] == "sqlalchemy-cqrs"
    assert meta["License-Expression"] == "MIT"
    assert meta["Author"] == "The cqrs developers"
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "Topic :: Database" in classifiers
    assert {"asyncio", "embedded", "dev"} <= set(meta.get_all("Provides-Extra") or [])
    requires = meta.get_all("Requires-Dist") or []
    assert any(r.startswith("psycopg[binary]>=3.2.1") for r in requires), requires
    assert "MIT License" in license_text
    assert "cqrs/py.typed" in names
    assert "cqrs/_docs/errors.md" in names and "cqrs/_docs/guides/operations.md" in names


def test_the_wheel_explains_error_codes_from_its_own_docs(
    built: dict[str, Path], tmp_path: Path
) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        wheel.extractall(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c",
         "import cqrs.docs; print(cqrs.docs.docs_path());"
         "print(cqrs.docs.error_section('cqrs-concurrency'))"],
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    first, *rest = done.stdout.splitlines()
    assert Path(first) == tmp_path / "cqrs" / "_docs"
    assert rest[0] == "## cqrs-concurrency"


def test_sdist_ships_docs_license_and_tests(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    expected = {
        "LICENSE", "README.md", "docs/errors.md", "docs/architecture.md",
        "docs/guides/operations.md", "cqrs/__init__.py", "tests/conftest.py",
        "mkdocs.yml", "mkdocs_hooks.py", "conftest.py",
    }  # fmt: skip
    assert expected <= names, expected - names
