"""Internal: the phases of the scale run, each run in a process of its own.

A phase is a function ``(ctx, **args) -> dict`` registered in :data:`PHASES`;
``python -m benchmarks.scale --phase NAME --args JSON`` runs one and prints
its figures as JSON on the last line of stdout, with the process's peak
resident memory (``VmHWM`` of ``/proc/self/status``) added. One process a phase,
so the peak of a load does not hide the peak of a rebuild.

Both sides hold the same streams: ``acct-{i}`` has 10 deposits (versions 1
to 10, the ``n``-th deposit of the log is stream ``n // 10``'s version
``n % 10 + 1``). The cqrs side writes through ``EventStore.import_streams``
(one ``INSERT`` of the stream rows and one ``COPY`` a batch); the raw side
through ``raw.copy_batch`` (one ``COPY`` a batch into its plain table).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
from sqlalchemy import Engine, text

from benchmarks import raw
from benchmarks.events import EVENT_TYPE, deposited, make_store, payload_json
from benchmarks.projections import _projection, _read_model
from cqrs.config import Settings
from cqrs.events.model import Position
from cqrs.migrations.standalone import upgrade
from cqrs.projections.rebuild import rebuild
from cqrs.store.expected import NO_STREAM, StreamAppend
from cqrs.testing import schema_engine

PER_STREAM = 10
IMPORT_STREAMS = 1_000  # streams an import_streams call (10,000 events, one transaction)
COPY_ROWS = 100_000  # rows a raw COPY transaction
BATCH = 500  # events a projection batch, both sides
HASH_PARTITIONS = 8
CQRS_MODEL = "scale_cqrs"
RAW_MODEL = "scale_raw"


def settings() -> Settings:
    """The layout of the run: ``events`` hash-partitioned on ``stream_id``."""
    return Settings(partitioning="hash", hash_partitions=HASH_PARTITIONS)


@attrs.frozen
class Ctx:
    """Where a phase runs: the URL and the schema holding both sides' tables."""

    url: str
    schema: str

    def engine(self) -> Engine:
        return schema_engine(self.url, self.schema)

    def raw(self) -> raw.Conn:
        return raw.connect(self.url, self.schema, autocommit=True)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@contextmanager
def timed(out: dict[str, Any]) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    out["seconds"] = round(time.perf_counter() - wall, 6)
    out["cpu_seconds"] = round(time.process_time() - cpu, 6)


def _rate(out: dict[str, Any], units: int) -> dict[str, Any]:
    out["units"] = units
    out["rate"] = round(units / out["seconds"], 1) if out["seconds"] else None
    out["cpu_us_per_unit"] = round(out["cpu_seconds"] * 1e6 / units, 2) if units else None
    return out


# -- set-up ------------------------------------------------------------------------


def setup(ctx: Ctx) -> dict[str, Any]:
    """A fresh schema: the toolkit's tables (hash layout), the raw table, both read models."""
    admin = schema_engine(ctx.url, "public", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{ctx.schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{ctx.schema}"'))
    admin.dispose()
    migrator = schema_engine(ctx.url, ctx.schema, public=False)
    with migrator.connect() as conn:
        upgrade(conn, settings())
        _read_model(CQRS_MODEL).create(conn)
        conn.commit()
    migrator.dispose()
    with ctx.raw() as conn:
        raw.create_tables(conn)
        conn.execute(raw.READ_MODEL.format(table=RAW_MODEL))
    return {}


# -- loads -------------------------------------------------------------------------


LOADED_CQRS = "SELECT count(*) FROM streams WHERE stream_id LIKE 'acct-%'"
LOADED_RAW = "SELECT count(*) FROM raw_events WHERE version = 1 AND stream_id LIKE 'acct-%'"


def load_cqrs(ctx: Ctx, start: int, stop: int) -> dict[str, Any]:
    """Streams ``start`` to ``stop - 1`` through ``import_streams``, 1,000 streams a call."""
    store = make_store()
    engine = ctx.engine()
    with engine.connect() as c:  # a stopped run's streams stay (--resume)
        start = max(start, int(c.execute(text(LOADED_CQRS)).scalar_one()))
    out: dict[str, Any] = {"start": start}
    step = max(1, (stop - start) // 10)
    with timed(out):
        for first in range(start, stop, IMPORT_STREAMS):
            appends = [
                StreamAppend(
                    f"acct-{i}",
                    [deposited(f"acct-{i}", i * PER_STREAM + k) for k in range(PER_STREAM)],
                    expected_version=NO_STREAM,
                )
                for i in range(first, min(stop, first + IMPORT_STREAMS))
            ]
            with engine.begin() as conn:
                store.import_streams(conn, appends)
            if (first - start) // step != (first + IMPORT_STREAMS - start) // step:
                log(f"  cqrs load: {(first + IMPORT_STREAMS) * PER_STREAM:,} events")
    engine.dispose()
    return _rate(out, (stop - start) * PER_STREAM)


def load_raw(ctx: Ctx, start: int, stop: int) -> dict[str, Any]:
    """The same streams through ``COPY`` into the raw table, 100,000 rows a transaction."""
    per_copy = COPY_ROWS // PER_STREAM
    with ctx.raw() as conn:  # a stopped run's streams stay (--resume)
        start = max(start, int((conn.execute(LOADED_RAW).fetchone() or (0,))[0]))
    out: dict[str, Any] = {"start": start}
    with ctx.raw() as conn, timed(out):
        for first in range(start, stop, per_copy):
            raw.copy_batch(
                conn,
                (
                    (f"acct-{i}", k + 1, EVENT_TYPE, payload_json(f"acct-{i}", i * PER_STREAM + k))
                    for i in range(first, min(stop, first + per_copy))
                    for k in range(PER_STREAM)
                ),
            )
            done = min(stop, first + per_copy) * PER_STREAM
            if done % 1_000_000 == 0:
                log(f"  raw load: {done:,} events")
    return _rate(out, (stop - start) * PER_STREAM)


def checkpoint(ctx: Ctx) -> dict[str, Any]:
    """``ANALYZE`` both logs, then ``CHECKPOINT`` (loads' dirty pages off the next phase)."""
    out: dict[str, Any] = {}
    with ctx.raw() as conn, timed(out):
        conn.execute("ANALYZE events")
        conn.execute("ANALYZE streams")
        conn.execute("ANALYZE raw_events")
        conn.execute("CHECKPOINT")
    return out


# -- operations at a size ----------------------------------------------------------


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000, 3)


def _latencies(samples: list[float], cpu: float) -> dict[str, Any]:
    total = sum(samples)
    return {
        "ops": len(samples),
        "rate": round(len(samples) / total, 1),
        "p50_ms": _pct(samples, 0.5),
        "p99_ms": _pct(samples, 0.99),
        "cpu_us_per_unit": round(cpu * 1e6 / len(samples), 1),
    }


def _interleave(
    sides: dict[str, Callable[[int], None]], ops: int, rounds: int = 4
) -> dict[str, dict[str, Any]]:
    """Run each side's op ``ops`` times, in ``rounds`` interleaved chunks; latency figures."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    cpu = dict.fromkeys(sides, 0.0)
    chunk = max(1, ops // rounds)
    for r in range(rounds):
        for name, op in sides.items():
            c0 = time.process_time()
            for i in range(r * chunk, (r + 1) * chunk):
                t0 = time.perf_counter()
                op(i)
                samples[name].append(time.perf_counter() - t0)
            cpu[name] += time.process_time() - c0
    return {name: _latencies(samples[name], cpu[name]) for name in sides}


def operations(ctx: Ctx, streams: int, ops: int, window: int, label: str) -> dict[str, Any]:
    """Single appends, load + append, ``read_stream`` and a ``read_all`` window, both sides.

    Every side makes the same writes: ``ops`` new one-event streams and ``ops``
    deposits appended at the loaded version of random existing streams.
    """
    store = make_store()
    engine = ctx.engine()
    conn = ctx.raw()
    picks = random.Random(f"{label}-{streams}")
    chosen = [f"acct-{picks.randrange(streams)}" for _ in range(ops)]
    reads = [f"acct-{picks.randrange(streams)}" for _ in range(ops)]

    def cqrs_append(i: int) -> None:
        sid = f"new-{label}-{i}"
        with engine.begin() as c:
            store.append(c, sid, [deposited(sid, 0)], expected_version=NO_STREAM)

    def raw_append(i: int) -> None:
        sid = f"new-{label}-{i}"
        raw.append_one(conn, sid, 1, EVENT_TYPE, payload_json(sid, 0))

    def cqrs_load_append(i: int) -> None:
        sid = chosen[i]
        with engine.begin() as c:
            version = store.read_stream(c, sid)[-1].version
            store.append(c, sid, [deposited(sid, version + 1)], expected_version=version)

    def raw_load_append(i: int) -> None:
        sid = chosen[i]
        version = raw.load(conn, sid)[-1][0]
        raw.append_one(conn, sid, version + 1, EVENT_TYPE, payload_json(sid, version + 1))

    def cqrs_read(i: int) -> None:
        with engine.connect() as c:
            if len(store.read_stream(c, reads[i])) < PER_STREAM:
                raise RuntimeError(f"{reads[i]} is short")

    def raw_read(i: int) -> None:
        if len(raw.load(conn, reads[i])) < PER_STREAM:
            raise RuntimeError(f"{reads[i]} is short")

    out: dict[str, Any] = {}
    log(f"  single appends ({ops} a side)")
    out["append"] = _interleave({"raw": raw_append, "cqrs": cqrs_append}, ops)
    log(f"  load + append ({ops} a side)")
    out["load_append"] = _interleave({"raw": raw_load_append, "cqrs": cqrs_load_append}, ops)
    log(f"  read_stream ({ops} a side)")
    out["read_stream"] = _interleave({"raw": raw_read, "cqrs": cqrs_read}, ops)
    log(f"  read_all ({window:,} events a side, 3 rounds)")
    out["read_all"] = _read_all(ctx, engine, conn, window)
    conn.close()
    engine.dispose()
    return out


def _read_all(ctx: Ctx, engine: Engine, conn: raw.Conn, window: int) -> dict[str, Any]:
    """The last ``window`` events of each log, pages of 1,000, 3 interleaved rounds."""
    store = make_store()
    with engine.connect() as c:
        row = c.execute(
            text(
                "SELECT transaction_id::text::bigint, global_position FROM events "
                "ORDER BY transaction_id DESC, global_position DESC OFFSET :w LIMIT 1"
            ),
            {"w": window},
        ).first()
    start = Position(0, 0) if row is None else Position(int(row[0]), int(row[1]))
    (raw_start,) = conn.execute(
        "SELECT position FROM raw_events ORDER BY position DESC OFFSET %s LIMIT 1", (window,)
    ).fetchone() or (0,)

    def cqrs_side() -> int:
        n, after = 0, start
        with engine.connect() as c:
            while page := store.read_all(c, after=after, limit=1000):
                n += len(page)
                after = page[-1].position
        return n

    def raw_side() -> int:
        n, after = 0, raw_start
        while page := raw.read_page(conn, after, 1000):
            n += len(page)
            after = page[-1][0]
        return n

    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "cqrs": []}
    for _ in range(3):
        for name, fn in (("raw", raw_side), ("cqrs", cqrs_side)):
            out: dict[str, Any] = {}
            with timed(out):
                n = fn()
            runs[name].append(_rate(out, n))
    result: dict[str, Any] = {}
    for name, reps in runs.items():
        result[name] = {
            "events": reps[0]["units"],
            "rate": statistics.median(r["rate"] for r in reps),
            "cpu_us_per_unit": statistics.median(r["cpu_us_per_unit"] for r in reps),
        }
    return result


# -- rebuilds ----------------------------------------------------------------------


def _progress(side: str, total_hint: int) -> Callable[[int, int], None]:
    step = max(1, total_hint // 5)
    seen = {"next": step}

    def report(done: int, total: int) -> None:
        if done >= seen["next"]:
            log(f"  {side} rebuild: {done:,} of {total:,}")
            seen["next"] = done + step

    return report


def rebuild_cqrs(ctx: Ctx) -> dict[str, Any]:
    """``cqrs.projections.rebuild`` of the balance projection over the whole log."""
    engine = ctx.engine()
    with engine.connect() as c:
        total = int(c.execute(text("SELECT count(*) FROM events")).scalar_one())
    projection = _projection(_read_model(CQRS_MODEL), "scale_balance")
    out: dict[str, Any] = {}
    with timed(out):
        result = rebuild(engine, projection, store=make_store(), progress=_progress("cqrs", total))
    engine.dispose()
    out["applied"] = result.events
    out["log_events"] = total
    return _rate(out, total)


def rebuild_raw(ctx: Ctx) -> dict[str, Any]:
    """``raw.project``: the same read model from the raw table, 500 events a batch."""
    with ctx.raw() as conn:
        (total,) = conn.execute("SELECT count(*) FROM raw_events").fetchone() or (0,)
        out: dict[str, Any] = {}
        with timed(out):
            applied = raw.project(conn, RAW_MODEL, RAW_MODEL, BATCH)
    out["applied"] = applied
    out["log_events"] = total
    return _rate(out, int(total))


def verify(ctx: Ctx) -> dict[str, Any]:
    """Both read models hold the same rows, one per stream; every event was applied."""
    with ctx.raw() as conn:

        def one(sql: str) -> int:
            return int((conn.execute(sql).fetchone() or (0,))[0])

        found = {
            "cqrs_rows": one(f"SELECT count(*) FROM {CQRS_MODEL}"),
            "raw_rows": one(f"SELECT count(*) FROM {RAW_MODEL}"),
            "cqrs_streams": one("SELECT count(*) FROM streams"),
            "raw_streams": one("SELECT count(DISTINCT stream_id) FROM raw_events"),
            "differing_rows": one(
                f"SELECT count(*) FROM ((SELECT * FROM {CQRS_MODEL} EXCEPT "
                f"SELECT * FROM {RAW_MODEL}) UNION ALL (SELECT * FROM {RAW_MODEL} "
                f"EXCEPT SELECT * FROM {CQRS_MODEL})) d"
            ),
            "cqrs_events": one("SELECT count(*) FROM events"),
            "raw_events": one("SELECT count(*) FROM raw_events"),
        }
    problems = []
    if found["differing_rows"]:
        problems.append(f"{found['differing_rows']} rows differ between the read models")
    for side in ("cqrs", "raw"):
        if found[f"{side}_rows"] != found[f"{side}_streams"]:
            problems.append(f"{side}: {found[f'{side}_rows']} rows for {found[f'{side}_streams']}")
    if found["cqrs_events"] != found["raw_events"]:
        problems.append(f"logs differ: {found['cqrs_events']} != {found['raw_events']}")
    found["ok"] = not problems
    found["problems"] = problems
    return found


# -- storage -----------------------------------------------------------------------

SIZES = """
WITH parts AS (
    SELECT relid FROM pg_partition_tree(to_regclass(%(parent)s)) WHERE isleaf
    UNION SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass(%(parent)s) AND c.relkind = 'r'
)
SELECT coalesce(sum(pg_relation_size(relid)
                  + pg_relation_size(relid, 'fsm') + pg_relation_size(relid, 'vm')), 0),
       coalesce(sum(pg_table_size(relid)), 0),
       coalesce(sum(pg_indexes_size(relid)), 0)
FROM parts
"""
INDEXES = """
SELECT i.relname,
       CASE WHEN i.relkind = 'I' THEN
           (SELECT coalesce(sum(pg_relation_size(t.relid)), 0)
            FROM pg_partition_tree(i.oid) t WHERE t.isleaf)
       ELSE pg_relation_size(i.oid) END
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = to_regclass(%(parent)s)
ORDER BY 2 DESC
"""


def storage(ctx: Ctx) -> dict[str, Any]:
    """Bytes per event of each side: heap, TOAST, indexes and each index (over partitions).

    The cqrs side counts ``events`` (all partitions) and ``streams``, whose
    row per stream is part of what an event costs.
    """
    out: dict[str, Any] = {}
    with ctx.raw() as conn:
        for side, tables, log_table in (
            ("cqrs", ["events", "streams"], "events"),
            ("raw", ["raw_events"], "raw_events"),
        ):
            (events,) = conn.execute(f"SELECT count(*) FROM {log_table}").fetchone() or (0,)
            figures: dict[str, Any] = {"events": events, "tables": {}}
            for table in tables:
                heap, with_toast, indexes = conn.execute(SIZES, {"parent": table}).fetchone() or (
                    0,
                    0,
                    0,
                )
                per_index = {
                    name: int(size)
                    for name, size in conn.execute(INDEXES, {"parent": table}).fetchall()
                }
                figures["tables"][table] = {
                    "heap": int(heap),
                    "toast": int(with_toast) - int(heap),
                    "indexes": int(indexes),
                    "per_index": per_index,
                }
            figures["total"] = sum(
                t["heap"] + t["toast"] + t["indexes"] for t in figures["tables"].values()
            )
            figures["bytes_per_event"] = round(figures["total"] / events, 1) if events else None
            out[side] = figures
    return out


def explain_read_stream(ctx: Ctx, stream_id: str) -> dict[str, Any]:
    """``EXPLAIN ANALYZE`` of both sides' stream reads (the second run, warm caches)."""
    from cqrs.store import sql

    compiled = str(sql.READ_STREAM).replace(":sid", "%(sid)s")
    compiled = compiled.replace(":lo", "1").replace(":hi", "2147483647")
    with ctx.raw() as conn:
        plans = {}
        for side, query in (("cqrs", compiled), ("raw", raw.LOAD.replace("%s", "%(sid)s"))):
            for _ in range(2):
                rows = conn.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) {query}", {"sid": stream_id}
                ).fetchall()
            plans[side] = "\n".join(r[0] for r in rows)
    return plans


PHASES: dict[str, Callable[..., dict[str, Any]]] = {
    "setup": setup,
    "load_cqrs": load_cqrs,
    "load_raw": load_raw,
    "checkpoint": checkpoint,
    "operations": operations,
    "rebuild_cqrs": rebuild_cqrs,
    "rebuild_raw": rebuild_raw,
    "verify": verify,
    "storage": storage,
    "explain_read_stream": explain_read_stream,
}
