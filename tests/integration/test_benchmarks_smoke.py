"""Every benchmark scenario runs end to end at a tiny size and its checks pass.

No timing is asserted: this only proves the scenarios, the raw baseline, the
eventsourcing contestant (installed by the dev extra) and the result checks
work on real PostgreSQL, that a wrong count is reported, and that the figures
page and its chart are written.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import __main__ as bench_main
from benchmarks import es, report
from benchmarks.harness import (
    REGISTRY,
    BenchmarkError,
    Context,
    Scenario,
    Sides,
    load_scenarios,
    run_scenario,
)
from benchmarks.store import check_side

SCENARIOS = load_scenarios()
# Workloads without an eventsourcing counterpart.
CQRS_AND_RAW_ONLY = {
    "command round trip",
    "rare-type catch-up (1 %)",
    "relay throughput",
    "in engine.begin(): single appends",
    "in engine.begin(): load + append",
    "projection counters",
}


def test_the_eventsourcing_contestant_is_installed_with_the_dev_extra() -> None:
    assert es.available(), "pip install -e '.[dev]' installs eventsourcing[postgres]"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_runs_and_counts_match(name: str, cqrs_database_url: str) -> None:
    result = run_scenario(SCENARIOS[name], cqrs_database_url, size=20, repeat=1)
    assert result.name == name
    expected = ["raw", "cqrs"] if name in CQRS_AND_RAW_ONLY else ["raw", "cqrs", "eventsourcing"]
    assert result.contestants == expected
    for contestant in expected:
        assert len(result.rates[contestant]) == 1
        assert result.rate(contestant) > 0


def test_the_concurrent_workload_reports_what_the_tailing_reader_missed(
    cqrs_database_url: str,
) -> None:
    result = run_scenario(SCENARIOS["4 concurrent writers"], cqrs_database_url, size=40, repeat=2)
    assert set(result.missed) == {"raw", "cqrs", "eventsourcing"}
    assert result.missed["cqrs"] == (0, 0)  # the scenario itself raises otherwise
    assert all(len(m) == 2 for m in result.missed.values())


def test_store_scenarios_are_registered_with_their_targets() -> None:
    targets = {name: SCENARIOS[name].target for name in SCENARIOS}
    assert targets["single appends"] == 0.6
    assert targets["load + append"] == 0.6
    assert targets["4 concurrent writers"] == 0.9
    assert targets["batch appends (500)"] == 0.5
    assert targets["read_all (pages of 1000)"] == 0.6
    assert targets["projection throughput"] == 0.6


def _lying(ctx: Context) -> Iterator[Sides]:
    """Claims to write one more event than it does."""
    from benchmarks.events import deposited, make_store

    store = make_store()

    def cqrs(rep: int) -> int:
        with ctx.engine.begin() as conn:
            store.append(conn, f"acct-c{rep}", [deposited(f"acct-c{rep}", 1)])
        return 1

    def raw(rep: int) -> int:
        return 1

    def verify() -> None:
        check_side(ctx, "acct-c", events=ctx.repeat + 1, streams=ctx.repeat)

    yield Sides(cqrs, raw, verify)


def test_a_count_mismatch_is_an_error(cqrs_database_url: str) -> None:
    spec = Scenario("lying", _lying, 0.5, 1, 1, "events", "")
    with pytest.raises(BenchmarkError, match=r"events in acct-c\* streams: expected 3, found 2"):
        run_scenario(spec, cqrs_database_url, repeat=2)


def test_cli_runs_one_scenario_as_json(
    cqrs_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--database-url", cqrs_database_url, "--only", "single", "--size", "10"]
    assert bench_main.main([*argv, "--repeat", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (row,) = out["results"]
    assert row["scenario"] == "single appends"
    assert row["size"] == 10
    assert row["verdict"] in ("PASS", "MISS")


def test_cli_rejects_an_unknown_scenario() -> None:
    with pytest.raises(SystemExit, match="matches 0 scenarios"):
        bench_main.main(["--only", "no such scenario"])


def test_registering_a_name_twice_is_refused() -> None:
    from benchmarks.harness import scenario

    with pytest.raises(BenchmarkError, match="registered twice"):
        scenario("single appends")(_lying)
    assert REGISTRY["single appends"].fn.__name__ == "single_appends"


def test_cli_prints_the_table(cqrs_database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--database-url", cqrs_database_url, "--only", "batch", "--size", "5", "--repeat", "1"]
    assert bench_main.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("scenario"))
    assert header.split()[:5] == ["scenario", "size", "unit", "raw/s", "cqrs/s"]
    (row,) = [line for line in lines if line.startswith("batch appends (500)")]
    assert row.split()[3:5] == ["5", "events"]
    assert row.split()[-3] in ("PASS", "MISS")


def test_cli_writes_the_figures_page_and_its_chart(
    cqrs_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "docs" / "benchmarks.md"
    argv = ["--database-url", cqrs_database_url, "--only", "single", "--only", "read_all"]
    assert bench_main.main([*argv, "--size", "10", "--repeat", "2", "--write-docs", str(page)]) == 0
    text = page.read_text()
    assert "| single appends (10 events) |" in text
    assert "| read_all (pages of 1000) (10 events) |" in text
    assert "PostgreSQL " in text and "synchronous_commit=" in text
    assert "cores (nproc)" in text and "load average" in text
    assert f"--write-docs {page}" in text
    assert "eventsourcing 9.5" in text
    chart = tmp_path / "docs" / "img" / "benchmarks.png"
    if importlib.util.find_spec("matplotlib") is not None:  # the bench extra
        assert chart.read_bytes()[:4] == b"\x89PNG"
        assert "![ratios to raw psycopg](img/benchmarks.png)" in text
    else:  # the dev extra alone: the page says why there is no chart
        assert not chart.exists()
        assert "(chart skipped: matplotlib is not installed" in text


def test_without_matplotlib_the_chart_is_skipped_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    message = report.write_chart([], tmp_path / "chart.png")
    assert message.startswith("chart skipped: matplotlib is not installed")
    assert not (tmp_path / "chart.png").exists()
