"""Internal: ``python -m benchmarks``: run the scenarios and print the table.

Usage::

    python -m benchmarks                      # every scenario, default sizes (~3 min)
    python -m benchmarks --quick              # small sizes (< 30 s)
    python -m benchmarks --only "single appends" --json
    python -m benchmarks --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m benchmarks --write-docs docs/benchmarks.md      # what ``make bench`` runs
    python -m benchmarks --scale large        # 10M events: python -m benchmarks.scale
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from benchmarks import report
from benchmarks.harness import (
    BenchmarkError,
    Result,
    format_table,
    load_scenarios,
    run_scenario,
    to_json,
)
from cqrs.config import normalise_url
from cqrs.testing import database_url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="cqrs, the raw psycopg baseline and eventsourcing, on the same database.",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL to run on (default: CQRS_DATABASE_URL, else the embedded PostgreSQL 16)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, under 30 s")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this scenario (repeatable; a unique prefix of the name is enough)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per side (median)")
    parser.add_argument("--size", type=int, help="override every scenario's size")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--write-docs",
        metavar="PATH",
        help="also write the figures page there (and its chart in img/ beside it)",
    )
    parser.add_argument(
        "--scale",
        choices=sorted(SCALES),
        help="run the scale benchmark instead (python -m benchmarks.scale, docs/scale.md)",
    )
    return parser


SCALES = {"large": 10_000_000}


def scale_argv(args: argparse.Namespace) -> list[str]:
    """What ``--scale`` passes on to ``python -m benchmarks.scale``."""
    argv = ["--events", str(SCALES[args.scale])]
    return argv + (["--database-url", args.database_url] if args.database_url else [])


def pick(names: list[str] | None, known: list[str]) -> list[str]:
    """The scenarios named (exactly or by a unique prefix), in registry order."""
    if not names:
        return known
    chosen: list[str] = []
    for name in names:
        hits = [k for k in known if k == name] or [k for k in known if k.startswith(name)]
        if len(hits) != 1:
            raise SystemExit(
                f"--only {name!r} matches {len(hits)} scenarios; pick one of: {', '.join(known)}"
            )
        chosen.append(hits[0])
    return [k for k in known if k in chosen]


def server_version(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.scale:
        from benchmarks.scale import run as scale

        return scale.main(scale_argv(args))
    if args.repeat < 1 or (args.size is not None and args.size < 1):
        parser.error("--repeat and --size must be at least 1")
    registry = load_scenarios()
    if args.list:
        for spec in registry.values():
            target = "-" if spec.target is None else f">= {spec.target}"
            print(f"{spec.name:28} target {target:8} {spec.description}")
        return 0
    names = pick(args.only, list(registry))
    url = normalise_url(args.database_url) if args.database_url else database_url()
    version = server_version(url)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    env = report.environment(url, list(sys.argv[1:] if argv is None else argv))

    def log(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr)

    load_before = os.getloadavg()[0]
    log(f"PostgreSQL {version}; {machine}; load average {load_before:.1f}")
    results: list[Result] = []
    started = time.perf_counter()
    failed = False
    for name in names:
        spec = registry[name]
        size = args.size or (spec.quick_size if args.quick else spec.size)
        try:
            results.append(run_scenario(spec, url, size=size, repeat=args.repeat, progress=log))
        except Exception as exc:  # one broken scenario must not hide the others' figures
            kind = "" if isinstance(exc, BenchmarkError) else f"{type(exc).__name__}: "
            print(f"{name}: ERROR: {kind}{exc}", file=sys.stderr)
            failed = True
    elapsed = time.perf_counter() - started
    load = (round(load_before, 2), round(os.getloadavg()[0], 2))
    if args.json:
        extra = {"environment": env, "postgres": version, "seconds": round(elapsed, 1)}
        print(to_json(results, **extra, load_average=load, repeat=args.repeat))
    else:
        print(f"\nPostgreSQL {version}; {machine}; {elapsed:.0f} s; median of {args.repeat}")
        print(format_table(results))
        if max(load) > (os.cpu_count() or 1):
            print(
                f"note: load average {load[0]:.1f} -> {load[1]:.1f} on {os.cpu_count()} cores: "
                "other work shared the machine, the figures are noisy"
            )
    if args.write_docs:
        messages = report.write_page(
            results, env, Path(args.write_docs), load=load, seconds=elapsed, repeat=args.repeat
        )
        for message in messages:
            print(message, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
