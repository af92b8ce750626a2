"""Internal: the benchmark harness: a scenario registry, timing, result checks, the table.

A scenario measures one job done by up to three contestants on the same
database: through ``cqrs``, by the hand-written psycopg baseline
(``benchmarks.raw``, the physical limit, on its own table) and through the
``eventsourcing`` library (``benchmarks.es``, when installed). Register one
with :func:`scenario` in any module of the ``benchmarks`` package (the runner
imports them all). The decorated function gets a :class:`Context` on a fresh
schema, does its set-up, yields the sides and a check of every side's
result, and may clean up after the ``yield``::

    @scenario("command round trip", target=0.5, size=1000, quick_size=100)
    def round_trip(ctx: Context) -> Iterator[Sides]:
        ...                                   # set-up, not timed
        def cqrs(rep: int) -> int: ...        # timed; returns units done
        def raw(rep: int) -> int: ...         # timed; returns units done
        def verify() -> None:
            ctx.expect("events", want, ctx.count("SELECT count(*) FROM events"))
        yield Sides(cqrs, raw, verify)        # eventsourcing=... is optional

Each side runs ``repeat`` times (3 by default), interleaved with the others,
and the median rate of each is reported with its ratio to raw and the
min-max of the per-repetition ratios.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import psycopg
from sqlalchemy import Engine, text

from cqrs.testing import isolated_schema


class BenchmarkError(Exception):
    """A scenario's count check failed or its set-up was wrong."""


@attrs.frozen
class Timed:
    """A side's own measurement, for sides that time themselves (e.g. across processes).

    ``missed`` is what a live tailing reader failed to see while the side wrote
    (``None`` when no reader ran).
    """

    units: int
    seconds: float
    missed: int | None = None


SideFn = Callable[[int], "int | Timed"]

# The contestants, baseline first: ratios are to ``raw``.
CONTESTANTS = ("raw", "cqrs", "eventsourcing")


@attrs.frozen
class Sides:
    """What a scenario yields: the cqrs side, the raw side, the check, eventsourcing's side.

    ``eventsourcing`` is ``None`` when that library is not installed or the
    scenario has no counterpart in it.
    """

    cqrs: SideFn
    raw: SideFn
    verify: Callable[[], None]
    eventsourcing: SideFn | None = None

    def contestants(self) -> list[tuple[str, SideFn]]:
        found = {"raw": self.raw, "cqrs": self.cqrs, "eventsourcing": self.eventsourcing}
        return [(name, fn) for name in CONTESTANTS if (fn := found[name]) is not None]


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
_NOT_SCENARIOS = {"harness", "raw", "events", "es", "report", "profile", "scale", "shop_rate"}


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
    """One scenario's figures: each contestant's rates, CPU and missed counts per repetition."""

    name: str
    unit: str
    size: int
    rates: Mapping[str, tuple[float, ...]]
    target: float | None
    # This process's CPU time per unit (µs), per repetition; absent for sides
    # that run elsewhere (Timed). Less noisy than rates on a shared machine.
    cpu: Mapping[str, tuple[float, ...]] = attrs.field(factory=dict)
    # Events a live tailing reader did not see, per repetition (Timed sides only).
    missed: Mapping[str, tuple[int, ...]] = attrs.field(factory=dict)

    @property
    def contestants(self) -> list[str]:
        return [c for c in CONTESTANTS if self.rates.get(c)]

    def rate(self, contestant: str) -> float:
        """The median rate of ``contestant`` (0 when it did not run)."""
        rates = self.rates.get(contestant)
        return statistics.median(rates) if rates else 0.0

    def ratio(self, contestant: str = "cqrs") -> float | None:
        """``contestant``'s median rate over the raw baseline's (``None`` if either is absent)."""
        raw, mine = self.rate("raw"), self.rate(contestant)
        return mine / raw if raw and mine else None

    def ratio_range(self, contestant: str = "cqrs") -> tuple[float, float] | None:
        """The lowest and highest ratio of one repetition's rate to the same repetition's raw."""
        raw, mine = self.rates.get("raw", ()), self.rates.get(contestant, ())
        pairs = [m / r for m, r in zip(mine, raw, strict=False) if r]
        return (min(pairs), max(pairs)) if pairs else None

    @property
    def cqrs_rate(self) -> float:
        return self.rate("cqrs")

    @property
    def raw_rate(self) -> float:
        return self.rate("raw")

    @property
    def verdict(self) -> str:
        ratio = self.ratio("cqrs")
        if self.target is None or ratio is None:
            return "-"
        return "PASS" if ratio >= self.target else "MISS"

    def cpu_us(self, contestant: str) -> float | None:
        return _median_or_none(tuple(self.cpu.get(contestant, ())))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scenario": self.name,
            "unit": self.unit,
            "size": self.size,
            "target": self.target,
            "verdict": self.verdict,
        }
        for c in self.contestants:
            ratio, span = self.ratio(c), self.ratio_range(c)
            out[c] = {
                "per_s": round(self.rate(c), 1),
                "ratio": None if ratio is None else round(ratio, 3),
                "ratio_range": None if span is None else [round(x, 3) for x in span],
                "samples": [round(r, 1) for r in self.rates[c]],
                "client_cpu_us": self.cpu_us(c),
                "missed": list(self.missed[c]) if c in self.missed else None,
            }
        return out


def _median_or_none(values: tuple[float, ...]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _measure(side: SideFn, rep: int) -> tuple[float, float | None, int | None]:
    """The side's rate (units/s), this process's CPU µs per unit (None if Timed), missed."""
    cpu, start = time.process_time(), time.perf_counter()
    out = side(rep)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if isinstance(out, Timed):
        return (out.units / out.seconds if out.seconds > 0 else 0.0), None, out.missed
    return (out / elapsed if elapsed > 0 else 0.0), (cpu / out * 1e6 if out else None), None


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
    """Run ``spec`` on a fresh schema: every contestant ``repeat`` times, then its check.

    The contestants interleave, and the one that goes first rotates: raw, cqrs,
    eventsourcing; then cqrs, eventsourcing, raw; ... so a drift of the
    machine's speed hits them all alike.
    """
    size = spec.size if size is None else size
    rates: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    missed: dict[str, list[int]] = {}
    with isolated_schema(url, prefix="bench") as engine:
        ctx = Context(url, engine, current_schema(engine), size, repeat)
        steps = spec.fn(ctx)
        try:
            sides = next(steps)
            order = sides.contestants()
            for rep in range(repeat):
                shift = rep % len(order)
                for label, side in order[shift:] + order[:shift]:
                    rate, cpu, miss = _measure(side, rep)
                    rates.setdefault(label, []).append(rate)
                    if cpu is not None:
                        cpus.setdefault(label, []).append(cpu)
                    if miss is not None:
                        missed.setdefault(label, []).append(miss)
                    if progress:
                        note = "" if miss is None else f", {miss} missed by the tailing reader"
                        progress(
                            f"{spec.name}: {label} #{rep + 1}: {rate:,.0f} {spec.unit}/s{note}"
                        )
            sides.verify()
            next(steps, None)  # the scenario's own clean-up after its ``yield``
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()
    return Result(
        spec.name, spec.unit, size,
        {k: tuple(v) for k, v in rates.items()}, spec.target,
        {k: tuple(v) for k, v in cpus.items()}, {k: tuple(v) for k, v in missed.items()},
    )  # fmt: skip


SHORT = {"raw": "raw", "cqrs": "cqrs", "eventsourcing": "es"}


def _ratio_cell(r: Result, contestant: str) -> str:
    ratio = r.ratio(contestant)
    return "-" if ratio is None else f"{ratio:.2f}"


def _cpu_cell(r: Result) -> str:
    cells = [r.cpu_us(c) for c in CONTESTANTS]
    if all(c is None for c in cells):
        return "-"
    return "/".join("-" if c is None else f"{c:,.0f}" for c in cells)


def _missed_cell(r: Result) -> str:
    if not r.missed:
        return "-"
    return "/".join(str(max(r.missed[c])) if c in r.missed else "-" for c in CONTESTANTS)


def format_table(results: list[Result]) -> str:
    """The results as a fixed-width table (rates are medians; ratios are to raw)."""
    header = (
        "scenario", "size", "unit", "raw/s", "cqrs/s", "cqrs x", "es/s", "es x", "target", "",
        "cpu µs r/c/e", "missed r/c/e",
    )  # fmt: skip
    rows = [
        (
            r.name,
            f"{r.size:,}",
            r.unit,
            f"{r.raw_rate:,.0f}",
            f"{r.cqrs_rate:,.0f}",
            _ratio_cell(r, "cqrs"),
            f"{r.rate('eventsourcing'):,.0f}" if r.rates.get("eventsourcing") else "-",
            _ratio_cell(r, "eventsourcing"),
            "-" if r.target is None else f">= {r.target:.2f}",
            r.verdict,
            _cpu_cell(r),
            _missed_cell(r),
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
