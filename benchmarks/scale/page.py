"""Internal: ``docs/scale.md`` from the scale run's figures.

The hand-written findings between :data:`START` and :data:`END` are kept
when the page is written again; the rest is generated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

START = "<!-- findings: start (hand-written, kept on regeneration) -->"
END = "<!-- findings: end -->"
PLACEHOLDER = "Findings are written by hand after a run."


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def _raw_rebuild(stage: dict[str, Any]) -> float:
    """The mean of the raw rebuilds run (before the cqrs one, and after it)."""
    r = stage["rebuild"]
    rates = [r[k]["rate"] for k in ("raw_before", "raw_after") if k in r]
    return float(sum(rates) / len(rates))


def _get(get: Any, stage: dict[str, Any], side: str) -> Any:
    """``get(stage, side)``, or ``None`` for a figure a stopped run did not reach."""
    try:
        return get(stage, side)
    except KeyError:
        return None


def rows(results: dict[str, Any]) -> list[list[str]]:
    """One row a figure: what, then raw / cqrs / ratio at each size."""
    stages = results["stages"]
    out: list[list[str]] = []

    def add(what: str, get: Any, digits: int = 0, ratio: bool = True) -> None:
        row = [what]
        for s in stages:
            r, c = _get(get, s, "raw"), _get(get, s, "cqrs")
            row += [_n(r, digits), _n(c, digits)]
            row.append(f"{c / r:.2f}x" if ratio and r and c else "-")
        out.append(row)

    add("load, events/s", lambda s, side: s["load"][side]["rate"])
    add("load, client CPU µs/event", lambda s, side: s["load"][side]["cpu_us_per_unit"], 1, False)
    add("load, peak RSS MB", lambda s, side: s["load"][side]["peak_rss_mb"], 0, False)
    for key, label in (
        ("append", "single appends"),
        ("load_append", "load + append"),
        ("read_stream", "read_stream"),
    ):
        add(f"{label}, ops/s", lambda s, side, k=key: s["operations"][k][side]["rate"])
        add(f"{label}, p50 ms", lambda s, side, k=key: s["operations"][k][side]["p50_ms"], 2, False)
        add(f"{label}, p99 ms", lambda s, side, k=key: s["operations"][k][side]["p99_ms"], 2, False)
    add("read_all, events/s", lambda s, side: s["operations"]["read_all"][side]["rate"])
    add(
        "rebuild, events/s",
        lambda s, side: _raw_rebuild(s) if side == "raw" else s["rebuild"]["cqrs"]["rate"],
    )
    add(
        "rebuild, client CPU µs/event",
        lambda s, side: s["rebuild"]["raw_before" if side == "raw" else "cqrs"]["cpu_us_per_unit"],
        1,
        False,
    )
    add(
        "rebuild, peak RSS MB",
        lambda s, side: s["rebuild"]["raw_before" if side == "raw" else "cqrs"]["peak_rss_mb"],
        0,
        False,
    )
    add(
        "bytes/event",
        lambda s, side: s["storage"][side]["bytes_per_event"],
        0,
    )
    return out


def table(results: dict[str, Any]) -> str:
    head = ["figure"]
    for s in results["stages"]:
        size = _size(s["size"])
        head += [f"raw {size}", f"cqrs {size}", f"ratio {size}"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows(results)]
    return "\n".join(lines)


def storage_table(results: dict[str, Any]) -> str:
    stage = results["stages"][-1]
    lines = [
        "| side | table | heap B/event | TOAST B/event | indexes B/event | index: B/event |",
        "|---|---|---:|---:|---:|---|",
    ]
    for side in ("raw", "cqrs"):
        figures = stage["storage"][side]
        events = figures["events"]
        for name, t in figures["tables"].items():
            per = ", ".join(f"`{i}` {s / events:.0f}" for i, s in t["per_index"].items())
            lines.append(
                f"| {side} | `{name}` | {t['heap'] / events:.0f} | {t['toast'] / events:.0f} "
                f"| {t['indexes'] / events:.0f} | {per} |"
            )
        lines.append(f"| {side} | **total** | | | | **{figures['bytes_per_event']:.0f}** |")
    return "\n".join(lines)


def summary(results: dict[str, Any]) -> str:
    return table(results)


def findings(path: Path) -> str:
    """The hand-written section of the page at ``path`` (a placeholder when there is none)."""
    if path.exists():
        text = path.read_text()
        if START in text and END in text:
            return text.split(START, 1)[1].split(END, 1)[0].strip("\n")
    return PLACEHOLDER


def render(results: dict[str, Any], kept: str) -> str:
    env = results["environment"]
    pg = env["postgres"]
    settings = ", ".join(f"`{k}={v}`" for k, v in pg.items() if k != "server_version")
    stages = results["stages"]
    last = stages[-1]
    plan = last.get("explain_read_stream", {})
    sizes = " and ".join(_size(s["size"]) for s in stages)
    rebuild = last["rebuild"]
    return f"""# Scale: {_size(results["events"])} events

What happens to appends, reads and a projection rebuild when the log is large.
`cqrs` is measured beside the raw baseline (`benchmarks/raw.py`: the fastest
hand-written psycopg program for the job, on a plain table of its own) on the
same database, at {sizes} events. Both logs hold the same events: streams of
10 deposits, loaded through the public bulk path (`EventStore.import_streams`,
one `INSERT` of the stream rows and one `COPY` of 10,000 events a transaction)
and by `COPY` into the raw table (100,000 rows a transaction), then `ANALYZE`
and `CHECKPOINT`. The toolkit's `events` table is hash-partitioned on
`stream_id` ({_partitions(results)} partitions, `Settings(partitioning="hash")`).

Each phase runs in a process of its own, so its peak resident memory (`VmHWM`)
is its own. Operations run interleaved (raw, cqrs, in 4 rounds):
single-event appends create new streams (one autocommit `INSERT` raw, one
`append` in a transaction cqrs); load + append reads a random existing stream
and appends at its version; `read_stream` reads a random stream (10 events);
`read_all` reads the last {_window(results):,} events of the log in pages of 1,000
(median of 3). The rebuild replays the whole log into an upsert read model,
500 events a batch: `cqrs.projections.rebuild` (shadow table, swap) against
`raw.project`, run before and after the cqrs rebuild (the table shows their
mean: raw before {_n(rebuild.get("raw_before", {}).get("rate"))}, after
{_n(rebuild.get("raw_after", {}).get("rate"))} events/s at {_size(last["size"])}). The run
checks that both read models are identical, one row a stream.

## Figures

{table(results)}

Rates are events or operations a second; ratios are cqrs / raw (above 1 is
faster, except for latencies and sizes where the ratio is read the other way).

## Storage at {_size(last["size"])} events

{storage_table(results)}

## Findings

{START}
{kept}
{END}

## `read_stream`'s plan at {_size(last["size"])}

cqrs (`cqrs.store.sql.READ_STREAM`):

```
{plan.get("cqrs", "-")}
```

raw:

```
{plan.get("raw", "-")}
```

## Where and how

- Date: {env["date"]}; whole run {results.get("minutes", "-")} minutes; load average
  {env.get("load_average_before", "-")} before, {env.get("load_average_after", "-")} after.
- Machine: {env["machine"]}.
- PostgreSQL {pg["server_version"]}: {settings}.
- Command: `{env["command"]}`; the page is re-rendered from
  `benchmarks/scale/results.json` with `python -m benchmarks.scale --render`.
"""


def _partitions(results: dict[str, Any]) -> int:
    from benchmarks.scale.phases import HASH_PARTITIONS

    return int(results.get("hash_partitions", HASH_PARTITIONS))


def _window(results: dict[str, Any]) -> int:
    return int(results["stages"][-1]["operations"]["read_all"]["raw"]["events"])


def write(path: Path, results: dict[str, Any]) -> None:
    """(Re)write the page at ``path``, keeping its findings."""
    path.write_text(render(results, findings(path)))
