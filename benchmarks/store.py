"""Internal: the event store's scenarios: appends (single, existing, concurrent, batch), read_all.

Each side writes its own streams (``acct-c...`` for cqrs, ``acct-r...`` for
raw) in the same tables, and each scenario checks afterwards that the database
holds exactly the events and streams each side wrote.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from typing import Any

from sqlalchemy import text

from benchmarks import raw
from benchmarks.events import deposited, make_store, payload
from benchmarks.harness import BenchmarkError, Context, Sides, Timed, scenario
from cqrs import NO_STREAM, START

STREAM_TYPE = "acct"


def check_side(ctx: Context, prefix: str, *, events: int, streams: int) -> None:
    """The events and streams whose ids start with ``prefix`` number exactly as written."""
    like = {"p": prefix + "%"}
    found = ctx.count("SELECT count(*) FROM events WHERE stream_id LIKE :p", like)
    ctx.expect(f"events in {prefix}* streams", events, found)
    found = ctx.count("SELECT count(*) FROM streams WHERE stream_id LIKE :p", like)
    ctx.expect(f"{prefix}* streams", streams, found)
    found = ctx.count(
        "SELECT count(*) FROM streams s WHERE stream_id LIKE :p AND version <> "
        "(SELECT count(*) FROM events e WHERE e.stream_id = s.stream_id)",
        like,
    )
    ctx.expect(f"{prefix}* streams whose version differs from their event count", 0, found)


@scenario("single appends", target=0.6, size=3000, quick_size=300)
def single_appends(ctx: Context) -> Iterator[Sides]:
    """One event per append, one transaction each, every append creating a new stream."""
    store = make_store()
    conn = ctx.raw_connection()
    done = {"c": 0, "r": 0}

    def cqrs(rep: int) -> int:
        for i in range(ctx.size):
            sid = f"acct-c{rep}-{i}"
            with ctx.engine.begin() as c:
                store.append(c, sid, [deposited(sid, 1)], expected_version=NO_STREAM)
        done["c"] += ctx.size
        return ctx.size

    def baseline(rep: int) -> int:
        for i in range(ctx.size):
            sid = f"acct-r{rep}-{i}"
            with conn.transaction():
                raw.append_new(conn, sid, STREAM_TYPE, [payload(sid, 1)])
        done["r"] += ctx.size
        return ctx.size

    def verify() -> None:
        for side in "cr":
            check_side(ctx, f"acct-{side}", events=done[side], streams=done[side])

    with conn:
        yield Sides(cqrs, baseline, verify)


@scenario("existing streams", target=None, size=1000, quick_size=150)
def existing_streams(ctx: Context) -> Iterator[Sides]:
    """Load a stream (5 events and up), append one event at the expected version; one tx each."""
    store = make_store()
    conn = ctx.raw_connection()
    initial = 5
    done = {"c": 0, "r": 0}
    with ctx.engine.begin() as c:
        for i in range(ctx.size):
            sid = f"acct-c-{i}"
            store.append(c, sid, [deposited(sid, n) for n in range(1, initial + 1)])
    with conn.transaction():
        for i in range(ctx.size):
            sid = f"acct-r-{i}"
            raw.append_new(conn, sid, STREAM_TYPE, [payload(sid, n) for n in range(1, initial + 1)])

    def cqrs(rep: int) -> int:
        for i in range(ctx.size):
            sid = f"acct-c-{i}"
            with ctx.engine.begin() as c:
                history = store.read_stream(c, sid)
                version = history[-1].version
                store.append(c, sid, [deposited(sid, version + 1)], expected_version=version)
        done["c"] += ctx.size
        return ctx.size

    def baseline(rep: int) -> int:
        for i in range(ctx.size):
            sid = f"acct-r-{i}"
            with conn.transaction():
                history = raw.read_stream(conn, sid)
                version = history[-1][1]
                raw.append_expected(conn, sid, STREAM_TYPE, version, [payload(sid, version + 1)])
        done["r"] += ctx.size
        return ctx.size

    def verify() -> None:
        for side in "cr":
            total = ctx.size * initial + done[side]
            check_side(ctx, f"acct-{side}-", events=total, streams=ctx.size)

    with conn:
        yield Sides(cqrs, baseline, verify)


# -- concurrent writers ---------------------------------------------------------

WRITERS = 4


def _writer(url: str, schema: str, index: int, tasks: Any, results: Any) -> None:
    """A writer process: its own engine and raw connection; runs ``(side, rep, n)`` tasks."""
    from cqrs.testing import schema_engine

    try:
        store = make_store()
        # Both sides hold one connection for the writer's life and run one
        # transaction per append (a worker's pattern): the ratio compares the
        # toolkit's transaction and append with psycopg's, not pool checkouts.
        engine = schema_engine(url, schema, pool_size=1, max_overflow=0)
        held = engine.connect()
        held.execute(text("SELECT 1"))
        held.commit()
        conn = raw.connect(url, schema)
        conn.execute("SELECT 1")
        conn.commit()
        results.put(("ready", index, 0, 0.0, 0.0))
        while (task := tasks.get()) is not None:
            side, rep, n = task
            start = time.perf_counter()
            for i in range(n):
                sid = f"acct-{side}{rep}-w{index}-{i}"
                if side == "c":
                    with held.begin():
                        store.append(held, sid, [deposited(sid, 1)], expected_version=NO_STREAM)
                else:
                    with conn.transaction():
                        raw.append_new(conn, sid, STREAM_TYPE, [payload(sid, 1)])
            results.put(("done", index, n, start, time.perf_counter()))
        conn.close()
        held.close()
        engine.dispose()
    except BaseException as exc:  # reported to the parent, which raises
        results.put(("error", index, 0, 0.0, 0.0, repr(exc)))


class WriterPool:
    """``WRITERS`` spawned writer processes, each with its own task queue."""

    def __init__(self, url: str, schema: str, writers: int = WRITERS) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results: Any = ctx.Queue()
        self.queues: list[Any] = [ctx.Queue() for _ in range(writers)]
        self.procs: list[BaseProcess] = [
            ctx.Process(target=_writer, args=(url, schema, i, q, self.results), daemon=True)
            for i, q in enumerate(self.queues)
        ]
        for proc in self.procs:
            proc.start()
        try:
            self._collect("ready")
        except BaseException:
            self.close()
            raise

    def _collect(self, kind: str) -> list[tuple[Any, ...]]:
        got: list[tuple[Any, ...]] = []
        while len(got) < len(self.procs):
            try:
                msg = self.results.get(timeout=600)
            except queue.Empty:
                raise BenchmarkError("writer processes did not answer within 600 s") from None
            if msg[0] == "error":
                raise BenchmarkError(f"writer {msg[1]} failed: {msg[5]}")
            if msg[0] != kind:
                raise BenchmarkError(f"writer {msg[1]} sent {msg[0]!r}, expected {kind!r}")
            got.append(msg)
        return got

    def run(self, side: str, rep: int, per_writer: int) -> Timed:
        """Every writer appends ``per_writer`` events; timed from first start to last end."""
        for q in self.queues:
            q.put((side, rep, per_writer))
        done = self._collect("done")
        start = min(m[3] for m in done)
        end = max(m[4] for m in done)
        return Timed(sum(m[2] for m in done), end - start)

    def close(self) -> None:
        """Ask every writer to stop; terminate any that has not within 60 s."""
        for q in self.queues:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=10)


@scenario("4 concurrent writers", target=0.8, size=3000, quick_size=400)
def concurrent_writers(ctx: Context) -> Iterator[Sides]:
    """4 processes, one held connection each, single-event appends to new streams; one tx each."""
    per_writer = max(1, ctx.size // WRITERS)
    done = {"c": 0, "r": 0}
    pool = WriterPool(ctx.url, ctx.schema)

    def side(name: str) -> Any:
        def run(rep: int) -> Timed:
            timed = pool.run(name, rep, per_writer)
            done[name] += timed.units
            return timed

        return run

    def verify() -> None:
        for name in "cr":
            ctx.expect(f"events written by {name} writers", done[name], ctx.repeat * ctx.size)
            check_side(ctx, f"acct-{name}", events=done[name], streams=done[name])

    try:
        yield Sides(side("c"), side("r"), verify)
    finally:
        pool.close()


@scenario("batch appends (100)", target=0.5, size=20_000, quick_size=2_000)
def batch_appends(ctx: Context) -> Iterator[Sides]:
    """100 events per append (fewer when size is smaller), new stream each, one tx each."""
    store = make_store()
    conn = ctx.raw_connection()
    batch = min(100, ctx.size)
    appends = max(1, ctx.size // batch)
    done = {"c": 0, "r": 0}

    def cqrs(rep: int) -> int:
        for i in range(appends):
            sid = f"acct-c{rep}-{i}"
            events = [deposited(sid, n) for n in range(1, batch + 1)]
            with ctx.engine.begin() as c:
                store.append(c, sid, events, expected_version=NO_STREAM)
        done["c"] += appends
        return appends * batch

    def baseline(rep: int) -> int:
        for i in range(appends):
            sid = f"acct-r{rep}-{i}"
            events = [payload(sid, n) for n in range(1, batch + 1)]
            with conn.transaction():
                raw.append_new(conn, sid, STREAM_TYPE, events)
        done["r"] += appends
        return appends * batch

    def verify() -> None:
        for side in "cr":
            check_side(ctx, f"acct-{side}", events=done[side] * batch, streams=done[side])

    with conn:
        yield Sides(cqrs, baseline, verify)


# -- reading --------------------------------------------------------------------


def wait_until_readable(ctx: Context, timeout: float = 60.0) -> None:
    """Wait until every event is older than the oldest running transaction.

    ``read_all`` (and its raw twin) only return events of transactions older
    than every transaction still running; on a shared server another client's
    open transaction can hold that horizon back for a while.
    """
    deadline = time.monotonic() + timeout
    sql = text(
        "SELECT coalesce(max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()), true) "
        "FROM events"
    )
    while True:
        with ctx.engine.connect() as c:
            if c.execute(sql).scalar_one():
                return
        if time.monotonic() > deadline:
            raise BenchmarkError(
                f"events not readable after {timeout:.0f} s: another transaction on this "
                "server has been open since before they were written; end it and re-run"
            )
        time.sleep(0.2)


@scenario("read_all (pages of 1000)", target=0.6, size=20_000, quick_size=3_000)
def read_all(ctx: Context) -> Iterator[Sides]:
    """Read the whole log through the gap-free cursor, 1000 per page, into event classes."""
    store = make_store()
    conn = ctx.raw_connection()
    page = 1000
    with ctx.engine.begin() as c:
        for start in range(0, ctx.size, page):
            n = min(page, ctx.size - start)
            sid = f"acct-{start // page}"
            store.append(c, sid, [deposited(sid, k) for k in range(1, n + 1)])
    wait_until_readable(ctx)
    seen: dict[str, list[int]] = {"c": [], "r": []}

    def cqrs(rep: int) -> int:
        count, after = 0, START
        with ctx.engine.connect() as c:
            while batch := store.read_all(c, after=after, limit=page):
                count += len(batch)
                after = batch[-1].position
        seen["c"].append(count)
        return count

    def baseline(rep: int) -> int:
        count, after = 0, (0, 0)
        with conn.transaction():
            while rows := raw.read_all_page(conn, after, page):
                count += len(rows)
                last = rows[-1]
                after = (int(last[4]), last[5])
        seen["r"].append(count)
        return count

    def verify() -> None:
        ctx.expect("events in the log", ctx.size, ctx.count("SELECT count(*) FROM events"))
        for side in "cr":
            ctx.expect(f"passes of the {side} reader", ctx.repeat, len(seen[side]))
            for count in seen[side]:
                ctx.expect(f"events read by the {side} reader in one pass", ctx.size, count)

    with conn:
        yield Sides(cqrs, baseline, verify)
