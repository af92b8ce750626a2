"""Internal: the projection scenarios: runner throughput and append-to-visible latency.

``projection throughput`` replays the same log into an upsert read model twice
per repetition: through ``ProjectionRunner`` (declarative projection, set-based
batches, checkpoint compare-and-set) and through a hand-written psycopg
projector doing the same job the obvious way (advisory lock, gap-free cursor
read, pipelined ``executemany`` upsert, checkpoint update, one transaction per
batch). The count check compares both read models row for row.

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

from benchmarks.events import Deposited, Noted, deposited, make_store, registry
from benchmarks.harness import Context, Sides, scenario
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


# read_all's page shape (cqrs.store.sql.READ_ALL_TYPES): the type filter inside the
# LIMIT, as a hand-written projector would, then the horizon.
RAW_READ = (
    "SELECT xid, global_position, stream_id, version, data FROM ("
    "SELECT transaction_id::text AS xid, global_position, stream_id, version, data, "
    "transaction_id AS sort_xid FROM events "
    "WHERE (transaction_id, global_position) > (%s::xid8, %s) "
    "AND event_type = 'bench.deposited' "
    "ORDER BY events.transaction_id, events.global_position LIMIT %s) page "
    "WHERE sort_xid < (SELECT pg_snapshot_xmin(pg_current_snapshot())) "
    "ORDER BY sort_xid, global_position"
)
RAW_UPSERT = (
    "INSERT INTO bench_raw (account_id, amount, currency, last_ref, version) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_id) DO UPDATE SET "
    "amount = EXCLUDED.amount, currency = EXCLUDED.currency, last_ref = EXCLUDED.last_ref, "
    "version = EXCLUDED.version"
)


def _seed(ctx: Context, events: int) -> None:
    store = make_store()
    accounts = max(1, events // EVENTS_PER_APPEND // 4)
    with ctx.engine.begin() as conn:
        for n in range(events // EVENTS_PER_APPEND):
            sid = f"acct-{n % accounts}"
            batch = [deposited(sid, n * EVENTS_PER_APPEND + k) for k in range(EVENTS_PER_APPEND)]
            store.append(conn, sid, batch)


def raw_projector(conn: Any) -> int:
    """The hand-written twin of the runner: replay into ``bench_raw``; events applied.

    Advisory lock, checkpoint, one page of ``bench.deposited`` events through
    the gap-free cursor, pipelined upsert, checkpoint update: one transaction
    per batch of ``BATCH``.
    """
    with conn.transaction():
        conn.execute("TRUNCATE bench_raw")
        conn.execute("DELETE FROM checkpoints WHERE projection = 'bench_raw'")
        conn.execute("INSERT INTO checkpoints (projection, shard) VALUES ('bench_raw', 0)")
    done = 0
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('bench_raw'), 0)")
            xid, pos = conn.execute(
                "SELECT transaction_id::text, global_position FROM checkpoints "
                "WHERE projection = 'bench_raw' AND shard = 0"
            ).fetchone() or ("0", 0)
            rows = conn.execute(RAW_READ, (xid, pos, BATCH)).fetchall()
            if not rows:
                return done
            with conn.cursor() as cur:
                cur.executemany(
                    RAW_UPSERT,
                    [
                        (d["account_id"], d["amount"], d["currency"], d["reference"], v)
                        for _, _, _, v, d in rows
                    ],
                )
            conn.execute(
                "UPDATE checkpoints SET transaction_id = %s::xid8, global_position = %s "
                "WHERE projection = 'bench_raw' AND shard = 0",
                (rows[-1][0], rows[-1][1]),
            )
        done += len(rows)


def _replay_cqrs(ctx: Context, projection: Projection) -> int:
    """Replay the log into ``bench_cqrs`` through ``ProjectionRunner``; events applied."""
    with ctx.engine.begin() as c:
        c.execute(text("TRUNCATE bench_cqrs"))
        c.execute(text("DELETE FROM checkpoints WHERE projection = 'bench_balance'"))
    runner = ProjectionRunner(ctx.engine, [projection], listen=False)
    done = runner.run_until_caught_up()
    runner.close()
    return done


def _same_read_models(ctx: Context) -> None:
    different = ctx.count(
        "SELECT count(*) FROM (SELECT * FROM bench_cqrs EXCEPT SELECT * FROM bench_raw "
        "UNION ALL SELECT * FROM bench_raw EXCEPT SELECT * FROM bench_cqrs) d"
    )
    ctx.expect("rows differing between the cqrs and raw read models", 0, different)


@scenario("projection throughput", target=0.6, size=20000, quick_size=2000)
def projection_throughput(ctx: Context) -> Iterator[Sides]:
    """Replay the log into an upsert read model: ProjectionRunner vs a raw psycopg projector."""
    cqrs_table, raw_table = _read_model("bench_cqrs"), _read_model("bench_raw")
    with ctx.engine.begin() as conn:
        cqrs_table.create(conn)
        raw_table.create(conn)
    _seed(ctx, ctx.size)
    projection = _projection(cqrs_table)
    conn = ctx.raw_connection()

    def cqrs(rep: int) -> int:
        return _replay_cqrs(ctx, projection)

    def raw(rep: int) -> int:
        return raw_projector(conn)

    def verify() -> None:
        _same_read_models(ctx)
        accounts = max(1, ctx.size // EVENTS_PER_APPEND // 4)
        ctx.expect("read-model rows", accounts, ctx.count("SELECT count(*) FROM bench_cqrs"))

    with conn:
        yield Sides(cqrs, raw, verify)


@scenario("rare-type catch-up (1 %)", target=None, size=100_000, quick_size=10_000)
def rare_type_catch_up(ctx: Context) -> Iterator[Sides]:
    """Catch up over a log where 1 in 100 events is one the projection handles (with ANALYZE).

    The rate counts events of the log passed. The raw projector filters the
    type inside its LIMIT and, with statistics, PostgreSQL jumps to the rare
    events through the type index; the runner reads windows of ``BATCH``
    events in index order, whatever the statistics (docs/guides/projections.md).
    """
    with ctx.engine.begin() as conn:
        _read_model("bench_cqrs").create(conn)
        _read_model("bench_raw").create(conn)
    store = make_store()
    with ctx.engine.begin() as conn:
        for start in range(0, ctx.size, 1000):
            sid = f"acct-{start // 1000}"
            batch = [
                deposited(sid, start + k) if k % 100 == 0 else Noted(start + k)
                for k in range(min(1000, ctx.size - start))
            ]
            store.append(conn, sid, batch)
        conn.execute(text("ANALYZE events"))
    projection = _projection(_read_model("bench_cqrs"))
    conn = ctx.raw_connection()
    applied = {"c": [], "r": []}

    def cqrs(rep: int) -> int:
        applied["c"].append(_replay_cqrs(ctx, projection))
        return ctx.size

    def raw(rep: int) -> int:
        applied["r"].append(raw_projector(conn))
        return ctx.size

    def verify() -> None:
        _same_read_models(ctx)
        wanted = ctx.count("SELECT count(*) FROM events WHERE event_type = 'bench.deposited'")
        for side in "cr":
            for n in applied[side]:
                ctx.expect(f"events applied by the {side} side in one catch-up", wanted, n)

    with conn:
        yield Sides(cqrs, raw, verify)


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
