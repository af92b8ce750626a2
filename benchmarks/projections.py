"""Internal: the projection scenarios: runner throughput and append-to-visible latency.

``projection throughput`` seeds the same deposits into every contestant's
store and replays them into an upsert read model, 500 events a batch: through
``ProjectionRunner`` (declarative projection, set-based batches, checkpoint
compare-and-set), through the raw baseline (``raw.project``: one page by
position, one ``unnest`` upsert, one checkpoint update a batch) and through
``eventsourcing`` (``es.project``: notifications decoded by the mapper, a
tracking view). The check compares every read model with the rows the seed
implies.

``measure_latency`` (not a ratio, so not a harness scenario) appends at a
steady rate with the NOTIFY hint installed and a runner following live, and
reports p50/p99 of commit-to-visible::

    python -m benchmarks.projections latency --seconds 10 --rate 200
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Numeric, Table, Text, text
from sqlalchemy.orm import sessionmaker

from benchmarks import es, raw
from benchmarks.events import (
    AMOUNT,
    EVENT_TYPE,
    Deposited,
    Noted,
    deposited,
    fields,
    make_store,
    payload_json,
    registry,
)
from benchmarks.harness import BenchmarkError, Context, Sides, scenario
from cqrs.events.model import Position
from cqrs.projections.batch import Outcome, Target
from cqrs.projections.declarative import Projection
from cqrs.projections.expr import E
from cqrs.projections.notify import install_notify
from cqrs.projections.runner import ProjectionRunner

BATCH = 500
EVENTS_PER_APPEND = 10


def _read_model(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("account_id", Text, primary_key=True),
        Column("amount", Numeric(12, 2), nullable=False),
        Column("currency", Text, nullable=False),
        Column("last_ref", Text, nullable=False),
        Column("version", Integer, nullable=False),
    )


def _projection(table: Table, name: str = "bench_balance") -> Projection:
    p = Projection(name, table, batch_size=BATCH, registry=registry)
    p.on(Deposited).upsert(
        account_id=E.account_id,
        amount=E.amount,
        currency=E.currency,
        last_ref=E.reference,
        version=E.version,
    )
    return p


def _plan(events: int) -> tuple[int, list[str]]:
    """The seed: ``events // 10`` appends of 10 deposits, round-robin over the accounts."""
    accounts = max(1, events // EVENTS_PER_APPEND // 4)
    return accounts, [f"acct-{n % accounts}" for n in range(events // EVENTS_PER_APPEND)]


def _seed(ctx: Context, events: int, conn: raw.Conn | None = None, app: Any = None) -> None:
    """The same deposits, in the same order, in every contestant's store."""
    store = make_store()
    _, plan = _plan(events)
    with ctx.engine.begin() as c:
        for n, sid in enumerate(plan):
            batch = [deposited(sid, n * EVENTS_PER_APPEND + k) for k in range(EVENTS_PER_APPEND)]
            store.append(c, sid, batch)
    if conn is not None:
        versions: dict[str, int] = {}
        rows = []
        for n, sid in enumerate(plan):
            for k in range(EVENTS_PER_APPEND):
                versions[sid] = versions.get(sid, 0) + 1
                rows.append((sid, versions[sid], EVENT_TYPE, payload_json(sid, n * 10 + k)))
        raw.copy_batch(conn, rows)
    if app is not None:
        accounts: dict[str, Any] = {}
        for n, sid in enumerate(plan):
            for k in range(EVENTS_PER_APPEND):
                values = fields(sid, n * EVENTS_PER_APPEND + k)
                if sid in accounts:
                    accounts[sid].deposit(*values)
                else:
                    accounts[sid] = es.Account(*values)
        # A few hundred events a save: one save of thousands hangs in psycopg's
        # pipeline (the library's insert), server and client each waiting to send.
        items = list(accounts.values())
        step = max(1, 500 // (len(plan) * EVENTS_PER_APPEND // len(items)))
        for start in range(0, len(items), step):
            app.save(*items[start : start + step])


def expected_read_model(events: int) -> list[tuple[Any, ...]]:
    """The rows every contestant's read model must hold after the replay of :func:`_seed`."""
    _, plan = _plan(events)
    last: dict[str, tuple[Any, ...]] = {}
    versions: dict[str, int] = {}
    for n, sid in enumerate(plan):
        versions[sid] = versions.get(sid, 0) + EVENTS_PER_APPEND
        ref = f"ref-{n * EVENTS_PER_APPEND + EVENTS_PER_APPEND - 1}"
        last[sid] = (sid, AMOUNT, "EUR", ref, versions[sid])
    return sorted(last.values())


def check_read_model(ctx: Context, table: str, want: list[tuple[Any, ...]]) -> None:
    """``table`` holds exactly ``want`` (row for row)."""
    with ctx.engine.connect() as c:
        got = [tuple(r) for r in c.execute(text(f"SELECT * FROM {table} ORDER BY account_id"))]
    ctx.expect(f"rows in {table}", len(want), len(got))
    wrong = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
    if wrong:
        raise BenchmarkError(
            f"{table}: {len(wrong)} rows differ, e.g. {wrong[0][0]} != {wrong[0][1]}"
        )


def _replay_cqrs(ctx: Context, projection: Projection) -> int:
    """Replay the log into ``bench_cqrs`` through ``ProjectionRunner``; events applied."""
    with ctx.engine.begin() as c:
        c.execute(text("TRUNCATE bench_cqrs"))
        c.execute(text("DELETE FROM checkpoints WHERE projection = 'bench_balance'"))
    runner = ProjectionRunner(ctx.engine, [projection], listen=False)
    done = runner.run_until_caught_up()
    runner.close()
    return done


@scenario("projection throughput", target=0.6, size=20000, quick_size=2000)
def projection_throughput(ctx: Context) -> Iterator[Sides]:
    """Replay the log into an upsert read model, 500 events a batch, from scratch."""
    cqrs_table = _read_model("bench_cqrs")
    with ctx.engine.begin() as conn:
        cqrs_table.create(conn)
    conn = ctx.raw_connection(autocommit=True)
    raw.create_tables(conn)
    for table in ("bench_raw", "bench_es"):
        conn.execute(raw.READ_MODEL.format(table=table))
    app = es.make_app(ctx.url, ctx.schema) if es.available() else None
    view = es.make_view(app, ctx.url, ctx.schema, "bench_es") if app is not None else None
    _seed(ctx, ctx.size, conn, app)
    projection = _projection(cqrs_table)
    applied: dict[str, list[int]] = {"c": [], "r": [], "e": []}

    def cqrs(rep: int) -> int:
        applied["c"].append(_replay_cqrs(ctx, projection))
        return applied["c"][-1]

    def baseline(rep: int) -> int:
        applied["r"].append(raw.project(conn, "bench_raw", "bench_raw", BATCH))
        return applied["r"][-1]

    def library(rep: int) -> int:
        applied["e"].append(es.project(app, view, BATCH))
        return applied["e"][-1]

    def verify() -> None:
        want = expected_read_model(ctx.size)
        events = len(_plan(ctx.size)[1]) * EVENTS_PER_APPEND
        for side, table in [("c", "bench_cqrs"), ("r", "bench_raw"), ("e", "bench_es")]:
            if side == "e" and app is None:
                continue
            check_read_model(ctx, table, want)
            ctx.expect(f"replays by {side}", ctx.repeat, len(applied[side]))
            for n in applied[side]:
                ctx.expect(f"events applied by {side} in one replay", events, n)

    with conn:
        yield Sides(cqrs, baseline, verify, library if app else None)
    if app is not None:
        app.close()


def _counters_model(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("account_id", Text, primary_key=True),
        Column("deposits", Integer, nullable=False),
        Column("total", Numeric(12, 2), nullable=False),
        Column("last_ref", Text, nullable=False),
    )


def _counters_projection(table: Table) -> Projection:
    """The docs' counter idiom: ``.update(n=Model.n + 1, ...)`` on an existing row."""
    p = Projection("bench_counters", table, batch_size=BATCH, registry=registry)
    p.on(Deposited).update(
        key=E.account_id,
        deposits=table.c.deposits + 1,
        total=table.c.total + E.amount,
        last_ref=E.reference,
    )
    return p


@scenario("projection counters", target=0.6, size=20000, quick_size=2000)
def projection_counters(ctx: Context) -> Iterator[Sides]:
    """Replay the log into a counter read model (``items + 1`` style updates), 500 a batch.

    Every account's row exists at zero before a replay (both sides create them in
    the timed part, one statement each); each deposit adds 1 and its amount and
    sets the last reference. Raw: per batch, one ``unnest`` UPDATE of the counts
    and sums it added up itself. No eventsourcing side.
    """
    table = _counters_model("bench_counters_cqrs")
    with ctx.engine.begin() as conn:
        table.create(conn)
    conn = ctx.raw_connection(autocommit=True)
    raw.create_tables(conn)
    conn.execute(raw.COUNTERS_MODEL.format(table="bench_counters_raw"))
    _seed(ctx, ctx.size, conn)
    accounts_n, plan = _plan(ctx.size)
    accounts = [f"acct-{n}" for n in range(accounts_n)]
    projection = _counters_projection(table)
    applied: dict[str, list[int]] = {"c": [], "r": []}

    def cqrs(rep: int) -> int:
        with ctx.engine.begin() as c:
            c.execute(text("TRUNCATE bench_counters_cqrs"))
            c.execute(text("DELETE FROM checkpoints WHERE projection = 'bench_counters'"))
            c.execute(table.insert(), [{"account_id": a, "deposits": 0, "total": 0,
                                        "last_ref": ""} for a in accounts])  # fmt: skip
        runner = ProjectionRunner(ctx.engine, [projection], listen=False)
        applied["c"].append(runner.run_until_caught_up())
        runner.close()
        return applied["c"][-1]

    def baseline(rep: int) -> int:
        applied["r"].append(
            raw.project_counters(conn, "bench_counters_raw", "bench_counters", BATCH, accounts)
        )
        return applied["r"][-1]

    def verify() -> None:
        counts: dict[str, int] = {}
        last: dict[str, str] = {}
        for n, sid in enumerate(plan):
            counts[sid] = counts.get(sid, 0) + EVENTS_PER_APPEND
            last[sid] = f"ref-{n * EVENTS_PER_APPEND + EVENTS_PER_APPEND - 1}"
        want = sorted((a, counts[a], AMOUNT * counts[a], last[a]) for a in counts)
        for side, name in [("c", "bench_counters_cqrs"), ("r", "bench_counters_raw")]:
            check_read_model(ctx, name, want)
            ctx.expect(f"replays by {side}", ctx.repeat, len(applied[side]))
            for n in applied[side]:
                ctx.expect(f"events applied by {side} in one replay", len(plan) * 10, n)

    with conn:
        yield Sides(cqrs, baseline, verify)


@scenario("rare-type catch-up (1 %)", target=None, size=100_000, quick_size=10_000)
def rare_type_catch_up(ctx: Context) -> Iterator[Sides]:
    """Catch up over a log where 1 in 100 events is one the projection handles (with ANALYZE).

    The rate counts events of the log passed. The raw projector filters the
    type inside its LIMIT through an index on (type, position), which only
    this scenario gives the raw table; the runner reads windows of events
    in log order (docs/guides/projections.md). No eventsourcing side.
    """
    with ctx.engine.begin() as conn:
        _read_model("bench_cqrs").create(conn)
    conn = ctx.raw_connection(autocommit=True)
    raw.create_tables(conn)
    conn.execute(raw.TYPE_INDEX)
    conn.execute(raw.READ_MODEL.format(table="bench_raw"))
    store = make_store()
    rows = []
    with ctx.engine.begin() as c:
        for start in range(0, ctx.size, 1000):
            sid = f"acct-{start // 1000}"
            batch = [
                deposited(sid, start + k) if k % 100 == 0 else Noted(start + k)
                for k in range(min(1000, ctx.size - start))
            ]
            store.append(c, sid, batch)
            for k, e in enumerate(batch, start=1):
                doc = payload_json(sid, start + k - 1) if isinstance(e, Deposited) else '{"n": 1}'
                rows.append(
                    (sid, k, EVENT_TYPE if isinstance(e, Deposited) else "bench.noted", doc)
                )
        c.execute(text("ANALYZE events"))
    raw.copy_batch(conn, rows)
    conn.execute("ANALYZE raw_events")
    projection = _projection(_read_model("bench_cqrs"))
    applied: dict[str, list[int]] = {"c": [], "r": []}

    def cqrs(rep: int) -> int:
        applied["c"].append(_replay_cqrs(ctx, projection))
        return ctx.size

    def baseline(rep: int) -> int:
        applied["r"].append(raw.project(conn, "bench_raw", "bench_raw", BATCH, only_type=True))
        return ctx.size

    def verify() -> None:
        different = ctx.count(
            "SELECT count(*) FROM (SELECT * FROM bench_cqrs EXCEPT SELECT * FROM bench_raw "
            "UNION ALL SELECT * FROM bench_raw EXCEPT SELECT * FROM bench_cqrs) d"
        )
        ctx.expect("rows differing between the cqrs and raw read models", 0, different)
        wanted = ctx.count("SELECT count(*) FROM events WHERE event_type = 'bench.deposited'")
        for side in "cr":
            for n in applied[side]:
                ctx.expect(f"events applied by the {side} side in one catch-up", wanted, n)

    with conn:
        yield Sides(cqrs, baseline, verify)


def _writer(url: str, schema: str, seconds: float, rate: float, out: Any) -> None:
    """A separate process appending at ``rate``/s; sends (position, commit time) pairs."""
    from cqrs.testing import schema_engine

    engine = schema_engine(url, schema)
    factory = sessionmaker(engine)
    notifier = install_notify(factory, engine=engine)
    store = make_store()
    interval = 1.0 / rate
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    n = 0
    while time.monotonic() < deadline:
        sid = f"acct-{n % 50}"
        with factory() as session, session.begin():
            result = store.append(session, sid, [deposited(sid, n)])
        out.put((str(result.position), time.monotonic()))
        n += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.put(None)
    notifier.close()
    engine.dispose()


def measure_latency(
    url: str, *, seconds: float = 10.0, rate: float = 200.0, durable: bool = True
) -> dict[str, Any]:
    """Commit-to-visible latency (ms) of a live runner while another process appends.

    The writer process stamps each commit (``time.monotonic``, shared by all
    processes of the machine); the runner stamps each committed batch with its
    checkpoint; an event is visible at the first batch whose checkpoint passed it.
    """
    import multiprocessing

    from benchmarks.harness import current_schema
    from cqrs.testing import isolated_schema

    with isolated_schema(url, prefix="bench") as engine:
        table = _read_model("bench_live")
        with engine.begin() as conn:
            table.create(conn)
        projection = _projection(table, "bench_live")
        batches: list[tuple[float, Position]] = []

        def seen(target: Target, outcome: Outcome) -> None:
            if outcome.processed:
                batches.append((time.monotonic(), outcome.checkpoint))

        runner = ProjectionRunner(
            engine,
            [projection],
            poll_interval=0.5,
            on_batch=seen,
            store=make_store(),
            durable=durable,
        )
        stop = threading.Event()
        follower = threading.Thread(target=runner.run_forever, args=(stop,))
        follower.start()
        time.sleep(0.5)
        queue: Any = multiprocessing.get_context("spawn").Queue()
        writer = multiprocessing.get_context("spawn").Process(
            target=_writer, args=(url, current_schema(engine), seconds, rate, queue)
        )
        writer.start()
        committed: list[tuple[Position, float]] = []
        while (item := queue.get(timeout=seconds + 60)) is not None:
            committed.append((Position.parse(item[0]), item[1]))
        writer.join(timeout=30)
        time.sleep(1.0)
        stop.set()
        follower.join(timeout=30)
    latencies = []
    for position, at in committed:
        visible = next((t for t, cp in batches if cp >= position), None)
        if visible is not None:
            latencies.append(max(0.0, visible - at) * 1000)
    latencies.sort()

    def pct(q: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(len(latencies) * q))], 2)
            if latencies
            else None
        )

    return {
        "events": len(committed),
        "measured": len(latencies),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 2) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.projections")
    parser.add_argument("what", choices=["latency"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="appends per second")
    parser.add_argument("--database-url")
    parser.add_argument(
        "--no-durable", action="store_true", help="runner batches with synchronous_commit=off"
    )
    args = parser.parse_args()
    from cqrs.config import normalise_url
    from cqrs.testing import database_url

    url = normalise_url(args.database_url) if args.database_url else database_url()
    print(measure_latency(url, seconds=args.seconds, rate=args.rate, durable=not args.no_durable))


if __name__ == "__main__":
    main()
