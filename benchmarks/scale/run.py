"""Internal: the scale run's driver: each phase in a child process, figures to JSON and page."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.scale import page
from benchmarks.scale.phases import PER_STREAM, PHASES, Ctx, log, peak_rss_mb
from cqrs.config import normalise_url
from cqrs.testing import database_url

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "scale" / "results.json"
PAGE = ROOT / "docs" / "scale.md"
LARGE = 10_000_000
SCHEMA = "scale"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description="append, read and rebuild at 1M events and at N, cqrs beside the raw baseline",
    )
    parser.add_argument("--events", type=int, default=LARGE, help="events to load (N)")
    parser.add_argument("--database-url", help="PostgreSQL (default: CQRS_DATABASE_URL)")
    parser.add_argument("--schema", default=SCHEMA, help="schema to (re)create for the run")
    parser.add_argument("--ops", type=int, default=1000, help="operations a side a workload")
    parser.add_argument("--window", type=int, default=100_000, help="read_all window, events")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where the figures go")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page to (re)write")
    parser.add_argument("--no-page", action="store_true", help="write the JSON only")
    parser.add_argument("--keep", action="store_true", help="keep the schema after the run")
    parser.add_argument(
        "--resume", action="store_true", help="go on from --json's finished stages (kept schema)"
    )
    parser.add_argument("--render", action="store_true", help="re-render the page from --json")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--args", default="{}", help=argparse.SUPPRESS)
    return parser


def stages(events: int) -> list[int]:
    """The sizes measured: 1M and N (a fifth of N and N for a small N)."""
    first = 1_000_000 if events >= 2_000_000 else max(PER_STREAM, events // 5)
    return [first, events]


def run_phase(url: str, schema: str, name: str, **args: Any) -> dict[str, Any]:
    """Run one phase in a child process; its figures, with its peak RSS (MB)."""
    command = [sys.executable, "-m", "benchmarks.scale", "--phase", name]
    command += ["--database-url", url, "--schema", schema, "--args", json.dumps(args)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def child(args: argparse.Namespace, url: str) -> int:
    result = PHASES[args.phase](Ctx(url, args.schema), **json.loads(args.args))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    started = time.perf_counter()
    env = report.environment(url, sys.argv[1:])
    env["command"] = "python -m benchmarks.scale " + " ".join(sys.argv[1:])
    env["load_average_before"] = round(os.getloadavg()[0], 1)

    def phase(name: str, **kw: Any) -> dict[str, Any]:
        log(f"{name} {kw if kw else ''}")
        t0 = time.perf_counter()
        out = run_phase(url, args.schema, name, **kw)
        log(f"{name} done in {time.perf_counter() - t0:.0f} s (peak RSS {out['peak_rss_mb']} MB)")
        return out

    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")

    results: dict[str, Any] = {"environment": env, "events": args.events, "stages": []}
    if args.resume:  # the stages a stopped run finished (its schema kept) stand
        earlier = json.loads(args.json.read_text())
        results["stages"] = [s for s in earlier["stages"] if "raw_after" in s.get("rebuild", {})]
        results["resumed_after_minutes"] = earlier.get("minutes_so_far")
        log(f"resuming after {[s['size'] for s in results['stages']]}")
    else:
        phase("setup")
    done = {s["size"] for s in results["stages"]}
    loaded = max(done, default=0) // PER_STREAM
    for size in stages(args.events):
        streams = size // PER_STREAM
        if streams * PER_STREAM in done:
            continue
        stage: dict[str, Any] = {"size": streams * PER_STREAM, "rebuild": {}}
        results["stages"].append(stage)
        stage["load"] = {"raw": phase("load_raw", start=loaded, stop=streams)}
        save()
        stage["load"]["cqrs"] = phase("load_cqrs", start=loaded, stop=streams)
        loaded = streams
        phase("checkpoint")
        stage["storage"] = phase("storage")
        save()
        stage["operations"] = phase(
            "operations",
            streams=streams,
            ops=args.ops,
            window=min(args.window, size // 2),
            label=f"s{size}",
        )
        stage["explain_read_stream"] = phase("explain_read_stream", stream_id="acct-1")
        save()
        phase("checkpoint")
        # raw, cqrs, the check, raw again: each saved as it ends
        for key, name in (("raw_before", "rebuild_raw"), ("cqrs", "rebuild_cqrs")):
            stage["rebuild"][key] = phase(name)
            save()
        stage["verify"] = phase("verify")
        if not stage["verify"]["ok"]:
            raise SystemExit(f"verification failed: {stage['verify']['problems']}")
        save()
        stage["rebuild"]["raw_after"] = phase("rebuild_raw")
        results["minutes_so_far"] = round((time.perf_counter() - started) / 60, 1)
        save()
    env["load_average_after"] = round(os.getloadavg()[0], 1)
    results["minutes"] = round((time.perf_counter() - started) / 60, 1)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    if not args.keep:
        from sqlalchemy import create_engine, text

        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
        admin.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.render:
        results = json.loads(args.json.read_text())
        page.write(args.page, results)
        print(f"wrote {args.page}")
        return 0
    url = normalise_url(args.database_url) if args.database_url else database_url()
    if args.phase:
        return child(args, url)
    if args.events < 2 * PER_STREAM:
        parser.error("--events must be at least 20")
    results = measure(args, url)
    print(page.summary(results))
    if not args.no_page:
        page.write(args.page, results)
        print(f"wrote {args.page} and {args.json}")
    return 0
