"""Internal: the published figures: ``docs/benchmarks.md`` and its chart, from one run.

``python -m benchmarks --write-docs docs/benchmarks.md`` (what ``make bench``
runs) measures every scenario, then writes the page (the table of ratios to
the raw baseline with their min-max, the machine, PostgreSQL's version and
key settings, package versions, the command, the date and the load average
at start and end) and a grouped bar chart next to it in ``img/``. The chart
needs matplotlib (the ``bench`` extra); without it the page is written and
the chart skipped with a message::

    env = environment(url, argv)
    write_page(results, env, Path("docs/benchmarks.md"))
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.harness import CONTESTANTS, REGISTRY, Result
from benchmarks.raw import conninfo

SETTINGS = (
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "max_wal_size",
    "work_mem",
    "jit",
)
PACKAGES = (
    "sqlalchemy-cqrs", "eventsourcing", "psycopg", "psycopg-binary", "sqlalchemy", "cattrs",
    "attrs",
)  # fmt: skip


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cores() -> int:
    """The cores this process may run on (what ``nproc`` prints)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def server(url: str) -> dict[str, str]:
    """PostgreSQL's version and the settings that move these figures."""
    with psycopg.connect(conninfo(url)) as conn:
        out = {"server_version": str(conn.execute("SHOW server_version").fetchone()[0])}  # type: ignore[index]
        for name in SETTINGS:
            out[name] = str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
    return out


def environment(url: str, argv: list[str]) -> dict[str, Any]:
    """Everything the page states about where and how the figures were measured."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks " + shlex.join(argv) if argv else "python -m benchmarks",
        "machine": f"{cores()} cores (nproc), {cpu_model()}, {platform.machine()}, "
        f"{platform.system()} {platform.release()}",
        "postgres": server(url),
        "packages": versions(),
    }


def _ratio(r: Result, contestant: str) -> str:
    ratio, span = r.ratio(contestant), r.ratio_range(contestant)
    if ratio is None or span is None:
        return "-"
    return f"**{ratio:.2f}x** ({span[0]:.2f}-{span[1]:.2f})"


def _cpu(r: Result) -> str:
    cells = [r.cpu_us(c) for c in CONTESTANTS]
    return (
        "-"
        if all(c is None for c in cells)
        else " / ".join("-" if c is None else f"{c:,.0f}" for c in cells)
    )


def _missed(r: Result) -> str:
    if not r.missed:
        return "-"
    return " / ".join(str(max(r.missed[c])) if c in r.missed else "-" for c in CONTESTANTS)


def table(results: list[Result]) -> str:
    """The markdown table: median rates, ratios to raw (min-max), client CPU, missed."""
    lines = [
        "| workload | raw /s | cqrs /s | cqrs : raw | eventsourcing /s | eventsourcing : raw "
        "| target | client CPU µs/unit raw / cqrs / es | missed raw / cqrs / es |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        es_rate = f"{r.rate('eventsourcing'):,.0f}" if r.rates.get("eventsourcing") else "-"
        target = "-" if r.target is None else f">= {r.target:.2f} {r.verdict}"
        lines.append(
            f"| {r.name} ({r.size:,} {r.unit}) | {r.raw_rate:,.0f} | {r.cqrs_rate:,.0f} "
            f"| {_ratio(r, 'cqrs')} | {es_rate} | {_ratio(r, 'eventsourcing')} | {target} "
            f"| {_cpu(r)} | {_missed(r)} |"
        )
    return "\n".join(lines)


def behind(results: list[Result]) -> list[str]:
    """Plain sentences: where cqrs misses its target or trails eventsourcing."""
    notes = []
    for r in results:
        mine, theirs = r.ratio("cqrs"), r.ratio("eventsourcing")
        if mine is None:
            continue
        if r.target is not None and mine < r.target:
            notes.append(f"{r.name}: {mine:.2f}x of raw, under the target {r.target:.2f}x")
        if theirs is not None and theirs > mine:
            notes.append(f"{r.name}: behind eventsourcing ({mine:.2f}x against {theirs:.2f}x)")
    return notes


def write_chart(results: list[Result], path: Path) -> str:
    """A grouped bar chart of the ratios to raw; returns what happened, in a sentence."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"
    names = [r.name for r in results]
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.27
    colours = {"raw": "#9e9e9e", "cqrs": "#1f77b4", "eventsourcing": "#ff7f0e"}
    for i, contestant in enumerate(CONTESTANTS):
        xs, ys = [], []
        for j, r in enumerate(results):
            ratio = 1.0 if contestant == "raw" else r.ratio(contestant)
            if ratio is not None:
                xs.append(j + (i - 1) * width)
                ys.append(ratio)
        ax.bar(xs, ys, width, label=contestant, color=colours[contestant])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([textwrap.fill(n, 16) for n in names], fontsize=8)
    ax.set_ylabel("rate as a ratio to raw psycopg (higher is faster)")
    ax.axhline(1.0, color="#555555", linewidth=0.6)
    ax.set_ylim(0, 1.2)
    ax.legend(loc="upper center", ncol=3, frameon=False)
    ax.set_title("Median of 3 interleaved repetitions, same machine and database")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"chart written to {path}"


def write_page(
    results: list[Result],
    env: dict[str, Any],
    path: Path,
    *,
    load: tuple[float, float],
    seconds: float,
    repeat: int,
) -> list[str]:
    """Write the page and its chart (``img/<stem>.png`` beside it); the messages to print."""
    chart = path.parent / "img" / f"{path.stem}.png"
    chart_message = write_chart(results, chart)
    pg = env["postgres"]
    settings = ", ".join(f"`{k}={v}`" for k, v in pg.items() if k != "server_version")
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    notes = behind(results) or ["nowhere: every target met and ahead of eventsourcing throughout"]
    scenarios = "\n".join(
        f"| `{r.name}` | {REGISTRY[r.name].description if r.name in REGISTRY else ''} |"
        for r in results
    )
    picture = (
        f"![ratios to raw psycopg](img/{chart.name})\n\n"
        if chart.exists()
        else f"({chart_message})\n\n"
    )
    text = PAGE.format(
        table=table(results),
        picture=picture,
        date=env["date"],
        command=env["command"],
        machine=env["machine"],
        server=pg["server_version"],
        settings=settings,
        packages=packages,
        load0=load[0],
        load1=load[1],
        noisy=" (above the core count: other work shared the machine, read the rates as noisy)"
        if max(load) > cores()
        else "",
        seconds=seconds,
        repeat=repeat,
        behind="\n".join(f"- {n}" for n in notes),
        scenarios=scenarios,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return [f"page written to {path}", chart_message]


PAGE = """\
# Benchmarks

<!-- Written by `make bench` (benchmarks/report.py): edit the template there, not this file. -->

`benchmarks/` is the performance suite, run on demand (`make bench`); `make test`
only runs every scenario at a tiny size to prove its checks
(`tests/integration/test_benchmarks_smoke.py`).

Each workload is done by three contestants on the same database, in the same
process (the concurrent one in 4 writer processes):

- **raw**: the physical limit, `benchmarks/raw.py`: the fastest hand-written
  psycopg 3 program for the same observable job, sharing nothing with the
  toolkit. Its own plain table (`position` identity, `stream_id`, `version`,
  `type`, `data jsonb`, unique `(stream_id, version)`), one autocommit `INSERT`
  per single-event command (the unique key is the version check), one `SELECT`
  to load, `COPY` for batches, pages by plain `position > %s` with `json.loads`
  into dicts, a projection as one `unnest` upsert plus a checkpoint update per
  batch. Plain positions are only gap-free with one writer at a time, so the
  concurrent workload uses its locked variant: one advisory lock per write,
  held from the position being drawn to commit.
- **cqrs**: the public API as a service uses it (`EventStore.append` /
  `append_many` (batches) / `read_stream` / `read_all`, `@event` attrs
  classes, `ProjectionRunner` with a declarative projection, `CommandBus`).
  Where raw sends one autocommit statement a command (single appends, load +
  append, the concurrent writers), cqrs does too: an append is one statement
  and needs no transaction around it (one connection in `AUTOCOMMIT`,
  `docs/guides/event-store.md`); the rows "in engine.begin(): ..." run the
  same workloads in a transaction each, as a command that also writes its own
  tables must (BEGIN and COMMIT: two more round trips). Batches, commands and
  projections run in transactions.
- **eventsourcing** {es_version}: the library's PostgreSQL persistence (psycopg 3),
  as its documentation shows it (`benchmarks/es.py`): an `Application`, an
  `Aggregate` whose methods trigger events, `app.save` (one transaction, the
  table locked for gap-free notification ids), `app.repository.get`,
  `recorder.select_notifications` plus `mapper.to_domain_event`, and for the
  projection a `PostgresTrackingRecorder` view fed 500 notifications a batch
  (the library's own runner applies one event a transaction).

How it is measured: a fresh schema per workload; the contestants interleave
(raw, cqrs, eventsourcing; then cqrs, eventsourcing, raw; ...), {repeat}
repetitions; rates are medians, the ratio is the median rate over raw's and the
range is the lowest and highest of the per-repetition ratios. Every workload
checks its result afterwards (events and streams in each store, versions
1..n, events read per pass, every read model row for row against the rows the
seed implies). In the concurrent workload a live reader in a fifth process
tails each contestant's log while its writers run and counts what it never
saw: the run fails unless cqrs's count is 0. Client CPU is the benchmark
process's own CPU time per unit (median), the part a library controls and the
steadier figure on a shared machine (`-` where the work runs in other
processes).

## Latest figures

{picture}{table}

Where cqrs is behind:

{behind}

- Date: {date}; {seconds:.0f} s; load average {load0:.2f} at start, {load1:.2f} at end{noisy}
- Command: `{command}`
- Machine: {machine}
- PostgreSQL {server}: {settings}
- Packages: {packages}

## What bounds each workload

Profiles of 2026-12-03 (py-spy on the cqrs side alone; server CPU read from
`/proc/<backend pid>/stat` over 2,000 appends):

- **Single appends** (one autocommit statement a command on both sides):
  client CPU about 175 µs an append against raw's 105, and server CPU 185-200
  µs against 130-165. In the client, 72 % of the time is psycopg's own
  execute (as for raw); our Python is about 20 % (encoding the event 10 %,
  building the `AppendResult` 5 %, input checks 3 %). The server writes two
  tables (the `streams` row's compare-and-set, and `events`: partitioned,
  three indexes) where raw writes one table with two.
- **4 concurrent writers**: CPU-bound on 2 cores. Client plus server CPU is
  about 375 µs an append against raw's 255-295, a ceiling near 0.7x when the
  machine is saturated; one run reached 0.89x. cqrs writers never wait for
  each other (first appends to one stream only), raw's wait on its one lock.
  Until 2026-12-04 the tailing reader cost cqrs more than its own pages: each
  poll (`read_all` in `engine.connect()`) began a transaction that the
  block's close rolled back, and psycopg drops its prepared statements at
  every `ROLLBACK`, so every poll planned the page afresh, on the same two
  cores as the writers. A read outside a transaction now runs on its own
  (`cqrs.store.driver.standalone`): three runs that evening gave 0.92x,
  1.00x and 0.97x (0.62-0.69x before).
- **In `engine.begin()`**: BEGIN and COMMIT are two more round trips (psycopg
  sends BEGIN on its own); psycopg's pipeline mode, which would send it with
  the first statement, cost more CPU than the round trip it saves.
- **Batches**: about 16 µs of client CPU an event against raw's 9 (40 before
  2026-12-03: `AppendResult.recorded` is now built on first read, the
  statement returns no `event_id`, and from 32 streams a call it is planned
  for its own arrays instead of prepared). What is left: encoding each event
  (about 4 µs: `datetime.isoformat` 1.5 and the JSON encoder), SQLAlchemy's
  begin and commit (about a sixth of the client), and on the server the
  insert into the partitioned table with three indexes (about 2.5 ms for 500
  events) where raw streams rows through `COPY` into one table. Measured
  again on 2026-12-04 (PG 15, 40 calls of 50 streams of 10, CPU of the
  backend from `/proc`): server 10-11 µs an event against raw's 4-4.5, client
  7-8 against 3.8. In EXPLAIN ANALYZE the events' `INSERT` is 1.9 ms of a
  3.3 ms statement (row by row into the partition and its three indexes,
  where `COPY` inserts in multi-row batches), planning 0.35 ms.
- **`read_all`**: 7-15 µs of client CPU an event against 3-6 (the machine
  varies). Counted with callgrind (instructions, repeatable on this noisy
  machine), 44.8k an event against raw's 23k. Decoding into event classes
  and `RecordedEvent`s is about 36k: the interpreter 11k, the JSON text 8k
  (raw pays the same), 17 slot setters 4.5k (`RecordedEvent`, the event,
  `Position`: the cheapest way CPython offers to fill a frozen attrs object),
  `Decimal` 1.2k. The fetch of 11 columns is the rest, and the
  young-generation collection the page's kept objects trigger is 2.6-4.2k.
  On 2026-12-04 two costs went: psycopg converted every `recorded_at` into
  the session's `ZoneInfo('Etc/UTC')` with `astimezone` (3.2k; in a UTC
  session the store now loads it in `datetime.timezone.utc`, as psycopg does
  for a session spelled `UTC`, `cqrs/store/timestamps.py`), and the
  transaction id went through text on both sides (0.6k; the store's cursor
  now loads `xid8` as an integer). 48.6k before, 44.8k after. The same day
  a plan flaw went too: with statistics that put the cursor's transaction at
  the end of the log (one large transaction, as this benchmark seeds), the
  planner read and sorted every later event for each page (16 ms instead of
  0.8 at 20,000 events); the cursor's values are now hidden from it. That
  evening the pass (one `engine.connect()` block) stopped beginning a
  transaction that its close rolled back: its first five pages were planned
  afresh every pass. Left on the server: a page of 500 costs 0.80 ms of
  backend CPU against raw's 0.45 (prepared, PG 15), the 11 columns against 5.
- **Command round trip**: the handler runs in the `Session`'s transaction:
  BEGIN, the stream's load, the append and COMMIT are four round trips where
  raw sends two autocommit statements (its unique key is the version check).
- **Projections** (profiles of 2026-12-03, 500 events a batch): the page's
  statement takes about 2.5 ms of server time against raw's 1.0, because it
  carries the whole envelope (11 columns against 5) and finds, in one
  snapshot, the lock, the read horizon, the checkpoint, parked streams and
  each event's place in the window. In the client, fetching those columns
  costs about 3 µs an event, decoding each into its event class and a
  `RecordedEvent` 6.5 µs on a fresh page (3.2 on rows already in the CPU's
  cache: JSON 0.7, cattrs structuring 1.1, the envelope 1.4) where raw's
  `json.loads` costs 0.7, and the rules and set-based writes 1.5 µs. Fixed
  that day: the garbage collector ran during the rules (about 7 µs an event,
  now paused for the whole batch), and the upsert and checkpoint went through
  SQLAlchemy's `execute`. On 2026-12-04 a window no wider than the page
  (`batch_size` events: every window of a projection that handles what it
  reads) stopped going through window functions: the page statement went
  from 0.70 to 0.48 ms for 500 events (EXPLAIN ANALYZE, PG 15).

## Workloads

| scenario | one unit |
|---|---|
{scenarios}

## Running

```sh
make bench                                   # every workload; writes this page and the chart
.venv/bin/python -m benchmarks --quick       # small sizes, under a minute, prints the table
.venv/bin/python -m benchmarks --only single --only batch     # unique name prefixes
.venv/bin/python -m benchmarks --json        # machine-readable, with every sample
.venv/bin/python -m benchmarks --database-url postgresql://postgres@127.0.0.1:5432/postgres
```

Without `--database-url` the suite uses `CQRS_DATABASE_URL`, else the embedded
PostgreSQL 16 (`pgserver`). `eventsourcing` and matplotlib come from the `bench`
extra (`pip install -e '.[bench]'`, which `make bench` does); without
eventsourcing its column stays empty, without matplotlib the chart is skipped.

## Adding a scenario

Register a generator with `@scenario` in a module of `benchmarks/` (see
`benchmarks/harness.py`): set-up, then `yield Sides(cqrs, raw, verify,
eventsourcing)` with one function per contestant returning the units it did
(or `Timed(units, seconds, missed)` when it times itself), and a `verify` that
raises `BenchmarkError` unless every store holds what its side wrote.
"""


def es_version() -> str:
    try:
        return importlib.metadata.version("eventsourcing")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


PAGE = PAGE.replace("{es_version}", es_version())
