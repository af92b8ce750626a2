"""Internal: the benchmark harness: a scenario registry, timing, count checks, the table.

A scenario measures one job done twice on the same database: once through
``cqrs`` and once by a hand-written raw psycopg baseline (``benchmarks.raw``).
Register one with :func:`scenario` in any module of the ``benchmarks`` package
(the runner imports them all). The decorated function gets a :class:`Context`
on a fresh schema, does its set-up, yields the two sides and a count check,
and may clean up after the ``yield``::

    @scenario("command round trip", target=0.5, size=1000, quick_size=100)
    def round_trip(ctx: Context) -> Iterator[Sides]:
        ...                                   # set-up, not timed
        def cqrs(rep: int) -> int: ...        # timed; returns units done
        def raw(rep: int) -> int: ...         # timed; returns units done
        def verify() -> None:
            ctx.expect("events", want, ctx.count("SELECT count(*) FROM events"))
        yield Sides(cqrs, raw, verify)

Each side runs ``repeat`` times (3 by default), alternating which goes first,
and the median rate of each side is reported with the ratio cqrs / raw.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import psycopg
from sqlalchemy import Engine, text

from cqrs.testing import isolated_schema


class BenchmarkError(Exception):
    """A scenario's count check failed or its set-up was wrong."""


@attrs.frozen
class Timed:
    """A side's own measurement, for sides that time themselves (e.g. across processes)."""

    units: int
    seconds: float


SideFn = Callable[[int], "int | Timed"]


@attrs.frozen
class Sides:
    """What a scenario yields: the cqrs side, the raw side and the count check."""

    cqrs: SideFn
    raw: SideFn
    verify: Callable[[], None]


@attrs.frozen
class Context:
    """What a scenario runs on: a fresh schema (engine and name), the URL and its size."""

    url: str
    engine: Engine
    schema: str
    size: int
    repeat: int

    def raw_connection(self, **kwargs: Any) -> psycopg.Connection[tuple[Any, ...]]:
        """A plain psycopg connection whose search path is this scenario's schema."""
        from benchmarks.raw import connect

        return connect(self.url, self.schema, **kwargs)

    def count(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run a ``SELECT count(*) ...`` in the scenario's schema."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(sql), params or {}).scalar_one())

    def expect(self, what: str, expected: int, actual: int) -> None:
        """Raise :class:`BenchmarkError` unless ``actual == expected``."""
        if actual != expected:
            raise BenchmarkError(f"count check failed: {what}: expected {expected}, found {actual}")


ScenarioFn = Callable[[Context], Iterator[Sides]]


@attrs.frozen
class Scenario:
    """A registered scenario: its function, ratio target and default sizes."""

    name: str
    fn: ScenarioFn
    target: float | None
    size: int
    quick_size: int
    unit: str
    description: str


REGISTRY: dict[str, Scenario] = {}

# Modules of the package that hold no scenarios.
_NOT_SCENARIOS = {"harness", "raw", "events"}


def scenario(
    name: str,
    *,
    target: float | None = 0.5,
    size: int = 1000,
    quick_size: int = 100,
    unit: str = "events",
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a scenario under ``name``; ``target`` is the minimum cqrs/raw ratio.

    ``target=None`` reports the ratio without a pass/miss verdict. ``size`` is
    the default amount of work per side and repetition, ``quick_size`` the one
    used by ``--quick``; ``unit`` names what the rates count.
    """

    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in REGISTRY and REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise BenchmarkError(f"scenario {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Scenario(name, fn, target, size, quick_size, unit, doc[0] if doc else "")
        return fn

    return register


def load_scenarios() -> dict[str, Scenario]:
    """Import every scenario module of the package (``store`` first) and return the registry."""
    import benchmarks

    names = sorted(
        m.name
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if not m.name.startswith("_") and m.name not in _NOT_SCENARIOS
    )
    for name in sorted(names, key=lambda n: (n != "store", n)):
        importlib.import_module(f"benchmarks.{name}")
    return REGISTRY


@attrs.frozen
class Result:
    """One scenario's figures: median rates of each side and their ratio."""

    name: str
    unit: str
    size: int
    cqrs_rates: tuple[float, ...]
    raw_rates: tuple[float, ...]
    target: float | None
    # This process's CPU time per unit (µs), per repetition; empty for sides
    # that run elsewhere (Timed). Less noisy than rates on a shared machine.
    cqrs_cpu: tuple[float, ...] = ()
    raw_cpu: tuple[float, ...] = ()

    @property
    def cqrs_rate(self) -> float:
        return statistics.median(self.cqrs_rates)

    @property
    def raw_rate(self) -> float:
        return statistics.median(self.raw_rates)

    @property
    def ratio(self) -> float:
        return self.cqrs_rate / self.raw_rate if self.raw_rate else 0.0

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "-"
        return "PASS" if self.ratio >= self.target else "MISS"

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "unit": self.unit,
            "size": self.size,
            "cqrs_per_s": round(self.cqrs_rate, 1),
            "raw_per_s": round(self.raw_rate, 1),
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "verdict": self.verdict,
            "cqrs_samples": [round(r, 1) for r in self.cqrs_rates],
            "raw_samples": [round(r, 1) for r in self.raw_rates],
            "cqrs_client_cpu_us": _median_or_none(self.cqrs_cpu),
            "raw_client_cpu_us": _median_or_none(self.raw_cpu),
        }


def _median_or_none(values: tuple[float, ...]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _measure(side: SideFn, rep: int) -> tuple[float, float | None]:
    """The side's rate (units/s) and this process's CPU µs per unit (None if Timed)."""
    cpu, start = time.process_time(), time.perf_counter()
    out = side(rep)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if isinstance(out, Timed):
        return (out.units / out.seconds if out.seconds > 0 else 0.0), None
    return (out / elapsed if elapsed > 0 else 0.0), (cpu / out * 1e6 if out else None)


def current_schema(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT current_schema()")).scalar_one())


def run_scenario(
    spec: Scenario,
    url: str,
    *,
    size: int | None = None,
    repeat: int = 3,
    progress: Callable[[str], None] | None = None,
) -> Result:
    """Run ``spec`` on a fresh schema: both sides ``repeat`` times, then its count check."""
    size = spec.size if size is None else size
    rates: dict[str, list[float]] = {"cqrs": [], "raw": []}
    cpus: dict[str, list[float]] = {"cqrs": [], "raw": []}
    with isolated_schema(url, prefix="bench") as engine:
        ctx = Context(url, engine, current_schema(engine), size, repeat)
        steps = spec.fn(ctx)
        try:
            sides = next(steps)
            for rep in range(repeat):
                order = [("cqrs", sides.cqrs), ("raw", sides.raw)]
                for label, side in order if rep % 2 == 0 else order[::-1]:
                    rate, cpu = _measure(side, rep)
                    rates[label].append(rate)
                    if cpu is not None:
                        cpus[label].append(cpu)
                    if progress:
                        progress(f"{spec.name}: {label} #{rep + 1}: {rate:,.0f} {spec.unit}/s")
            sides.verify()
            next(steps, None)  # the scenario's own clean-up after its ``yield``
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()
    return Result(
        spec.name, spec.unit, size, tuple(rates["cqrs"]), tuple(rates["raw"]), spec.target,
        tuple(cpus["cqrs"]), tuple(cpus["raw"]),
    )  # fmt: skip


def _cpu_cell(r: Result) -> str:
    c, w = _median_or_none(r.cqrs_cpu), _median_or_none(r.raw_cpu)
    return "-" if c is None or w is None else f"{c:,.0f}/{w:,.0f}"


def format_table(results: list[Result]) -> str:
    """The results as a fixed-width table."""
    header = ("scenario", "size", "unit", "cqrs/s", "raw/s", "ratio", "target", "", "cpu µs c/r")
    rows = [
        (
            r.name,
            f"{r.size:,}",
            r.unit,
            f"{r.cqrs_rate:,.0f}",
            f"{r.raw_rate:,.0f}",
            f"{r.ratio:.2f}",
            "-" if r.target is None else f">= {r.target:.2f}",
            r.verdict,
            _cpu_cell(r),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.ljust(w) if i in (0, 2) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def to_json(results: list[Result], **extra: Any) -> str:
    return json.dumps({**extra, "results": [r.as_dict() for r in results]}, indent=2)
