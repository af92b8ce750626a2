"""Every benchmark scenario runs end to end at a tiny size and its count check passes.

No timing is asserted: this only proves the scenarios, the raw baseline and the
count checks work on real PostgreSQL (and that a wrong count is reported).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from benchmarks import __main__ as bench_main
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


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_runs_and_counts_match(name: str, cqrs_database_url: str) -> None:
    result = run_scenario(SCENARIOS[name], cqrs_database_url, size=20, repeat=1)
    assert result.name == name
    assert len(result.cqrs_rates) == len(result.raw_rates) == 1
    assert result.cqrs_rate > 0
    assert result.raw_rate > 0


def test_store_scenarios_are_registered_with_their_targets() -> None:
    targets = {name: SCENARIOS[name].target for name in SCENARIOS}
    assert targets["single appends"] == 0.6
    assert targets["4 concurrent writers"] == 0.8
    assert targets["batch appends (100)"] == 0.5
    assert targets["read_all (pages of 1000)"] == 0.6
    assert targets["existing streams"] is None


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
    assert header.split()[:7] == ["scenario", "size", "unit", "cqrs/s", "raw/s", "ratio", "target"]
    (row,) = [line for line in lines if line.startswith("batch appends (100)")]
    assert row.split()[3:5] == ["5", "events"]
    assert row.split()[-2] in ("PASS", "MISS")
