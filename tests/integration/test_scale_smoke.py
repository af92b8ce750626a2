"""The scale benchmark (``python -m benchmarks.scale``) runs end to end on a small log.

No timing is asserted: this proves that every phase runs in its own process,
that both sides hold the same events and build the same read model (and that
the check notices when they do not), that the storage figures add up, and that
the page keeps its hand-written findings when it is written again.
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from benchmarks import __main__ as bench_main
from benchmarks.scale import page, phases
from benchmarks.scale import run as scale_run

EVENTS = 3_000


@pytest.fixture(scope="module")
def scale_run_result(
    cqrs_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path, Path, str]:
    out = tmp_path_factory.mktemp("scale")
    schema = f"scale_t_{uuid.uuid4().hex[:10]}"
    argv = ["--events", str(EVENTS), "--database-url", cqrs_database_url, "--schema", schema]
    argv += ["--ops", "20", "--window", "400", "--keep"]
    argv += ["--json", str(out / "r.json"), "--page", str(out / "scale.md")]
    assert scale_run.main(argv) == 0
    return json.loads((out / "r.json").read_text()), out / "r.json", out / "scale.md", schema


@pytest.fixture(scope="module")
def kept_schema(
    scale_run_result: tuple[dict[str, Any], Path, Path, str], cqrs_database_url: str
) -> Any:
    schema = scale_run_result[3]
    yield phases.Ctx(cqrs_database_url, schema)
    admin = create_engine(cqrs_database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def test_both_stages_ran_and_verified(
    scale_run_result: tuple[dict[str, Any], Path, Path, str], kept_schema: phases.Ctx
) -> None:
    results = scale_run_result[0]
    assert [s["size"] for s in results["stages"]] == [EVENTS // 5, EVENTS]
    last = results["stages"][-1]
    assert last["verify"]["ok"], last["verify"]["problems"]
    assert last["verify"]["differing_rows"] == 0
    # the same events on both sides: the loads and 2 x 20 operations a stage
    assert last["verify"]["cqrs_events"] == last["verify"]["raw_events"] == EVENTS + 2 * 2 * 20
    for key in ("raw_before", "cqrs", "raw_after"):
        rebuild = last["rebuild"][key]
        assert rebuild["applied"] == rebuild["log_events"] == EVENTS + 80
        assert rebuild["peak_rss_mb"] > 0
    for side in ("raw", "cqrs"):
        assert last["load"][side]["units"] == EVENTS - EVENTS // 5
        for op in ("append", "load_append", "read_stream"):
            assert last["operations"][op][side]["ops"] == 20
        assert last["operations"]["read_all"][side]["events"] >= 400


def test_storage_adds_up_over_partitions(
    scale_run_result: tuple[dict[str, Any], Path, Path, str],
) -> None:
    storage = scale_run_result[0]["stages"][-1]["storage"]
    events = storage["cqrs"]["tables"]["events"]
    assert events["heap"] > 0 and events["indexes"] > 0
    assert sum(events["per_index"].values()) == events["indexes"]
    assert set(events["per_index"]) >= {"pk_events", "ix_events_position"}
    assert storage["raw"]["tables"]["raw_events"]["heap"] > 0
    assert storage["raw"]["bytes_per_event"] > 0 and storage["cqrs"]["bytes_per_event"] > 0


def test_a_read_model_that_differs_is_reported(kept_schema: phases.Ctx) -> None:
    with kept_schema.raw() as conn:
        conn.execute(f"DELETE FROM {phases.RAW_MODEL} WHERE account_id = 'acct-1'")
    found = phases.verify(kept_schema)
    assert not found["ok"]
    assert found["differing_rows"] == 1
    assert any("rows for" in p for p in found["problems"])


def test_the_page_keeps_its_findings_when_rendered_again(
    scale_run_result: tuple[dict[str, Any], Path, Path, str],
) -> None:
    _, results_path, page_path, _ = scale_run_result
    first = page_path.read_text()
    assert "| read_stream, p99 ms |" in first and page.PLACEHOLDER in first
    page_path.write_text(first.replace(page.PLACEHOLDER, "Hand-written: keep me."))
    argv = ["--render", "--json", str(results_path), "--page", str(page_path)]
    assert scale_run.main(argv) == 0
    again = page_path.read_text()
    assert "Hand-written: keep me." in again and page.PLACEHOLDER not in again


def test_benchmarks_scale_large_runs_ten_million_events() -> None:
    args = argparse.Namespace(scale="large", database_url="postgresql://x/y")
    assert bench_main.scale_argv(args) == [
        "--events",
        "10000000",
        "--database-url",
        "postgresql://x/y",
    ]


def test_a_stopped_run_resumes_from_its_finished_stages(
    cqrs_database_url: str, tmp_path: Path
) -> None:
    schema = f"scale_t_{uuid.uuid4().hex[:10]}"
    common = ["--database-url", cqrs_database_url, "--schema", schema, "--ops", "12"]
    common += ["--window", "100", "--keep", "--json", str(tmp_path / "r.json"), "--no-page"]
    try:
        assert scale_run.main(["--events", "600", *common]) == 0
        # a larger run goes on from there: the loads start at the streams already there
        assert scale_run.main(["--events", "3000", "--resume", *common]) == 0
        results = json.loads((tmp_path / "r.json").read_text())
        assert [s["size"] for s in results["stages"]] == [120, 600, 3000]
        last = results["stages"][-1]
        assert last["load"]["raw"]["start"] == last["load"]["cqrs"]["start"] == 60
        assert last["load"]["cqrs"]["units"] == 2400
        assert last["verify"]["ok"], last["verify"]["problems"]
        assert (
            last["verify"]["cqrs_events"] == 3000 + 3 * 2 * 12
        )  # 12 appends, 12 load + append a stage
    finally:
        admin = create_engine(cqrs_database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
