"""Internal: the event store's scenarios: appends (new, existing, batch, concurrent), read_all.

Each contestant writes its own storage: cqrs its ``streams`` and ``events``
tables, the raw baseline its ``raw_events`` table, ``eventsourcing`` its
``bank_events`` table, all in the scenario's schema. Afterwards every
scenario checks that each store holds exactly what its side wrote.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import time
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from typing import Any

from sqlalchemy import Connection, text

from benchmarks import es, raw
from benchmarks.events import EVENT_TYPE, deposited, fields, make_store, payload_json
from benchmarks.harness import BenchmarkError, Context, Sides, Timed, scenario
from cqrs import NO_STREAM, START, StreamAppend
from cqrs.store.horizon import READ_HORIZON

STREAM_TYPE = "acct"


def check_side(ctx: Context, prefix: str, *, events: int, streams: int) -> None:
    """The cqrs events and streams whose ids start with ``prefix`` number exactly as written."""
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


def check_raw(ctx: Context, prefix: str, *, events: int, streams: int) -> None:
    """The raw table's events and streams under ``prefix``, and versions 1..n without holes."""
    like = {"p": prefix + "%"}
    found = ctx.count("SELECT count(*) FROM raw_events WHERE stream_id LIKE :p", like)
    ctx.expect(f"raw events in {prefix}* streams", events, found)
    found = ctx.count(
        "SELECT count(*) FROM (SELECT stream_id FROM raw_events WHERE stream_id LIKE :p "
        "GROUP BY stream_id HAVING max(version) = count(*)) s",
        like,
    )
    ctx.expect(f"raw {prefix}* streams with versions 1..n", streams, found)


def check_es(ctx: Context, app: Any, *, events: int, aggregates: int) -> None:
    """``eventsourcing``'s table holds ``events`` events of ``aggregates`` aggregates."""
    table = app.recorder.events_table_name
    ctx.expect("eventsourcing events", events, ctx.count(f"SELECT count(*) FROM {table}"))
    found = ctx.count(f"SELECT count(DISTINCT originator_id) FROM {table}")
    ctx.expect("eventsourcing aggregates", aggregates, found)


def raw_setup(ctx: Context) -> raw.Conn:
    """An autocommit connection on the scenario's schema, with the raw tables created."""
    conn = ctx.raw_connection(autocommit=True)
    raw.create_tables(conn)
    return conn


def es_app(ctx: Context) -> Any:
    """The scenario's ``eventsourcing`` application, or ``None`` when not installed."""
    return es.make_app(ctx.url, ctx.schema) if es.available() else None


@contextlib.contextmanager
def autocommit(ctx: Context) -> Iterator[Connection]:
    """One connection in autocommit, as the raw side holds one: each statement commits."""
    with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        yield c


@scenario("single appends", target=0.6, size=2000, quick_size=300)
def single_appends(ctx: Context) -> Iterator[Sides]:
    """One event per command, each creating a new stream; the append statement commits itself."""
    return _single_appends(ctx, in_transaction=False)


@scenario("in engine.begin(): single appends", target=None, size=2000, quick_size=300)
def single_appends_in_transaction(ctx: Context) -> Iterator[Sides]:
    """Single appends, each in ``engine.begin()`` (BEGIN and COMMIT: two more round trips)."""
    return _single_appends(ctx, in_transaction=True)


def _single_appends(ctx: Context, *, in_transaction: bool) -> Iterator[Sides]:
    store = make_store()
    conn = raw_setup(ctx)
    app = None if in_transaction else es_app(ctx)
    done = {"c": 0, "r": 0, "e": 0}

    def cqrs(rep: int) -> int:
        if in_transaction:
            for i in range(ctx.size):
                sid = f"acct-c{rep}-{i}"
                with ctx.engine.begin() as c:
                    store.append(c, sid, [deposited(sid, 1)], expected_version=NO_STREAM)
        else:
            with autocommit(ctx) as c:
                for i in range(ctx.size):
                    sid = f"acct-c{rep}-{i}"
                    store.append(c, sid, [deposited(sid, 1)], expected_version=NO_STREAM)
        done["c"] += ctx.size
        return ctx.size

    def baseline(rep: int) -> int:
        for i in range(ctx.size):
            sid = f"acct-r{rep}-{i}"
            raw.append_one(conn, sid, 1, EVENT_TYPE, payload_json(sid, 1))
        done["r"] += ctx.size
        return ctx.size

    def library(rep: int) -> int:
        for i in range(ctx.size):
            app.save(es.Account(*fields(f"acct-e{rep}-{i}", 1)))
        done["e"] += ctx.size
        return ctx.size

    def verify() -> None:
        check_side(ctx, "acct-c", events=done["c"], streams=done["c"])
        check_raw(ctx, "acct-r", events=done["r"], streams=done["r"])
        if app is not None:
            check_es(ctx, app, events=done["e"], aggregates=done["e"])

    with conn:
        yield Sides(cqrs, baseline, verify, library if app else None)
    if app is not None:
        app.close()


@scenario("load + append", target=0.6, size=1000, quick_size=150)
def existing_streams(ctx: Context) -> Iterator[Sides]:
    """Load a stream (5 events and up), append one event at the loaded version; each commits."""
    return _existing_streams(ctx, in_transaction=False)


@scenario("in engine.begin(): load + append", target=None, size=1000, quick_size=150)
def existing_streams_in_transaction(ctx: Context) -> Iterator[Sides]:
    """Load + append, both in one ``engine.begin()`` (BEGIN and COMMIT: two more round trips)."""
    return _existing_streams(ctx, in_transaction=True)


def _existing_streams(ctx: Context, *, in_transaction: bool) -> Iterator[Sides]:
    store = make_store()
    conn = raw_setup(ctx)
    app = None if in_transaction else es_app(ctx)
    initial = 5
    done = {"c": 0, "r": 0, "e": 0}
    with ctx.engine.begin() as c:
        for i in range(ctx.size):
            sid = f"acct-c-{i}"
            store.append(c, sid, [deposited(sid, n) for n in range(1, initial + 1)])
    raw.copy_batch(
        conn,
        (
            (f"acct-r-{i}", n, EVENT_TYPE, payload_json(f"acct-r-{i}", n))
            for i in range(ctx.size)
            for n in range(1, initial + 1)
        ),
    )
    ids: list[Any] = []
    if app is not None:
        for start in range(0, ctx.size, 100):
            accounts = []
            for i in range(start, min(ctx.size, start + 100)):
                account = es.Account(*fields(f"acct-e-{i}", 1))
                for n in range(2, initial + 1):
                    account.deposit(*fields(account.account_id, n))
                accounts.append(account)
            app.save(*accounts)
            ids.extend(a.id for a in accounts)

    def load_and_append(c: Connection, sid: str) -> None:
        version = store.read_stream(c, sid)[-1].version
        store.append(c, sid, [deposited(sid, version + 1)], expected_version=version)

    def cqrs(rep: int) -> int:
        if in_transaction:
            for i in range(ctx.size):
                with ctx.engine.begin() as c:
                    load_and_append(c, f"acct-c-{i}")
        else:  # the expected version guards the append, as raw's unique key does
            with autocommit(ctx) as c:
                for i in range(ctx.size):
                    load_and_append(c, f"acct-c-{i}")
        done["c"] += ctx.size
        return ctx.size

    def baseline(rep: int) -> int:
        for i in range(ctx.size):
            sid = f"acct-r-{i}"
            version = raw.load(conn, sid)[-1][0]
            raw.append_one(conn, sid, version + 1, EVENT_TYPE, payload_json(sid, version + 1))
        done["r"] += ctx.size
        return ctx.size

    def library(rep: int) -> int:
        for uid in ids:
            account = app.repository.get(uid)
            account.deposit(*fields(account.account_id, account.version + 1))
            app.save(account)
        done["e"] += ctx.size
        return ctx.size

    def verify() -> None:
        check_side(ctx, "acct-c-", events=ctx.size * initial + done["c"], streams=ctx.size)
        check_raw(ctx, "acct-r-", events=ctx.size * initial + done["r"], streams=ctx.size)
        if app is not None:
            check_es(ctx, app, events=ctx.size * initial + done["e"], aggregates=ctx.size)

    with conn:
        yield Sides(cqrs, baseline, verify, library if app else None)
    if app is not None:
        app.close()


BATCH = 500
PER_STREAM = 10


@scenario("batch appends (500)", target=0.5, size=20_000, quick_size=2_000)
def batch_appends(ctx: Context) -> Iterator[Sides]:
    """500 events per transaction: 50 new streams of 10 events each (fewer when size is small)."""
    store = make_store()
    conn = raw_setup(ctx)
    app = es_app(ctx)
    batch = min(BATCH, ctx.size)
    per_stream = min(PER_STREAM, batch)
    streams = batch // per_stream
    batches = max(1, ctx.size // batch)
    per_rep = batches * streams * per_stream
    done = {"c": 0, "r": 0, "e": 0}

    def cqrs(rep: int) -> int:
        for b in range(batches):
            with ctx.engine.begin() as c:
                store.append_many(
                    c,
                    [
                        StreamAppend(
                            sid,
                            [deposited(sid, n) for n in range(1, per_stream + 1)],
                            expected_version=NO_STREAM,
                        )
                        for s in range(streams)
                        if (sid := f"acct-c{rep}-{b}-{s}")
                    ],
                )
        done["c"] += 1
        return per_rep

    def baseline(rep: int) -> int:
        for b in range(batches):
            raw.copy_batch(
                conn,
                [
                    (sid, n, EVENT_TYPE, payload_json(sid, n))
                    for s in range(streams)
                    if (sid := f"acct-r{rep}-{b}-{s}")
                    for n in range(1, per_stream + 1)
                ],
            )
        done["r"] += 1
        return per_rep

    def library(rep: int) -> int:
        for b in range(batches):
            accounts = []
            for s in range(streams):
                account = es.Account(*fields(f"acct-e{rep}-{b}-{s}", 1))
                for n in range(2, per_stream + 1):
                    account.deposit(*fields(account.account_id, n))
                accounts.append(account)
            app.save(*accounts)
        done["e"] += 1
        return per_rep

    def verify() -> None:
        n = batches * streams
        check_side(ctx, "acct-c", events=done["c"] * per_rep, streams=done["c"] * n)
        check_raw(ctx, "acct-r", events=done["r"] * per_rep, streams=done["r"] * n)
        if app is not None:
            check_es(ctx, app, events=done["e"] * per_rep, aggregates=done["e"] * n)

    with conn:
        yield Sides(cqrs, baseline, verify, library if app else None)
    if app is not None:
        app.close()


# -- reading --------------------------------------------------------------------


def wait_until_readable(ctx: Context, timeout: float = 60.0) -> None:
    """Wait until every event is below the read horizon (``cqrs.store.horizon``).

    ``read_all`` only returns events of transactions older than every
    transaction of this database still running; another client's open
    transaction here can hold that horizon back for a while (one in another
    database of the server does not).
    """
    deadline = time.monotonic() + timeout
    sql = text(f"SELECT coalesce(max(transaction_id) < {READ_HORIZON}, true) FROM events")
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


PAGE = 1000


def seed_all(ctx: Context, conn: raw.Conn, app: Any, events: int, per_stream: int) -> None:
    """``events`` deposits in streams of ``per_stream`` in each contestant's store."""
    store = make_store()
    with ctx.engine.begin() as c:
        for start in range(0, events, per_stream):
            sid = f"acct-{start // per_stream}"
            n = min(per_stream, events - start)
            store.append(c, sid, [deposited(sid, k) for k in range(1, n + 1)])
    raw.copy_batch(
        conn,
        (
            (f"acct-{i // per_stream}", i % per_stream + 1, EVENT_TYPE,
             payload_json(f"acct-{i // per_stream}", i % per_stream + 1))
            for i in range(events)
        ),
    )  # fmt: skip
    if app is not None:
        for start in range(0, events, per_stream):
            n = min(per_stream, events - start)
            account = es.Account(*fields(f"acct-{start // per_stream}", 1))
            for k in range(2, n + 1):
                account.deposit(*fields(account.account_id, k))
            app.save(account)


@scenario("read_all (pages of 1000)", target=0.6, size=20_000, quick_size=3_000)
def read_all(ctx: Context) -> Iterator[Sides]:
    """Read the whole log, 1000 per page, into event classes (raw: dicts by json.loads)."""
    store = make_store()
    conn = raw_setup(ctx)
    app = es_app(ctx)
    seed_all(ctx, conn, app, ctx.size, PAGE)
    wait_until_readable(ctx)
    seen: dict[str, list[int]] = {"c": [], "r": [], "e": []}

    def cqrs(rep: int) -> int:
        count, after = 0, START
        with ctx.engine.connect() as c:
            while batch := store.read_all(c, after=after, limit=PAGE):
                count += len(batch)
                after = batch[-1].position
        seen["c"].append(count)
        return count

    def baseline(rep: int) -> int:
        count, after = 0, 0
        while rows := raw.read_page(conn, after, PAGE):
            count += len(rows)
            after = rows[-1][0]
        seen["r"].append(count)
        return count

    def library(rep: int) -> int:
        count, after = 0, 0
        while notes := app.recorder.select_notifications(after, PAGE, inclusive_of_start=False):
            decoded = [app.mapper.to_domain_event(n) for n in notes]
            count += len(decoded)
            after = notes[-1].id
        seen["e"].append(count)
        return count

    def verify() -> None:
        ctx.expect("events in the log", ctx.size, ctx.count("SELECT count(*) FROM events"))
        for side in "cre" if app is not None else "cr":
            ctx.expect(f"passes of the {side} reader", ctx.repeat, len(seen[side]))
            for count in seen[side]:
                ctx.expect(f"events read by the {side} reader in one pass", ctx.size, count)

    with conn:
        yield Sides(cqrs, baseline, verify, library if app else None)
    if app is not None:
        app.close()


# -- concurrent writers, with a live tailing reader -------------------------------

WRITERS = 4


def _writer(url: str, schema: str, index: int, tasks: Any, results: Any) -> None:
    """A writer process: holds one connection per contestant; runs ``(side, rep, n)`` tasks."""
    from cqrs.testing import schema_engine

    try:
        store = make_store()
        # Every side holds its connection for the writer's life and runs one
        # transaction per command (a worker's pattern): no pool checkouts timed.
        # Each side's command is one autocommit statement (cqrs's append needs no
        # BEGIN around it: docs/guides/event-store.md).
        engine = schema_engine(url, schema, pool_size=1, max_overflow=0)
        held = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        held.execute(text("SELECT 1"))
        conn = raw.connect(url, schema, autocommit=True)
        conn.execute("SELECT 1")
        app = es.make_app(url, schema, create=False) if es.available() else None
        results.put(("ready", index, 0, 0.0, 0.0))
        while (task := tasks.get()) is not None:
            side, rep, n = task
            start = time.perf_counter()
            for i in range(n):
                sid = f"acct-{side}{rep}-w{index}-{i}"
                if side == "c":
                    store.append(held, sid, [deposited(sid, 1)], expected_version=NO_STREAM)
                elif side == "r":
                    raw.append_locked(conn, sid, 1, EVENT_TYPE, payload_json(sid, 1))
                else:
                    app.save(es.Account(*fields(sid, 1)))
            results.put(("done", index, n, start, time.perf_counter()))
        if app is not None:
            app.close()
        conn.close()
        held.close()
        engine.dispose()
    except BaseException as exc:  # reported to the parent, which raises
        results.put(("error", index, 0, 0.0, 0.0, repr(exc)))


def _tail_cqrs(url: str, schema: str) -> Callable[[], list[str]]:
    from cqrs.testing import schema_engine

    store, engine = make_store(), schema_engine(url, schema, pool_size=1)
    state = {"after": START}

    def poll() -> list[str]:
        with engine.connect() as c:
            batch = store.read_all(c, after=state["after"], limit=PAGE)
        if batch:
            state["after"] = batch[-1].position
        return [r.stream_id for r in batch]

    return poll


def _tail_raw(url: str, schema: str) -> Callable[[], list[str]]:
    conn = raw.connect(url, schema, autocommit=True)
    state = {"after": 0}

    def poll() -> list[str]:
        rows = raw.read_page(conn, state["after"], PAGE)
        if rows:
            state["after"] = rows[-1][0]
        return [r[1] for r in rows]

    return poll


def _tail_es(url: str, schema: str) -> Callable[[], list[str]]:
    app = es.make_app(url, schema, create=False)
    state = {"after": 0}

    def poll() -> list[str]:
        notes = app.recorder.select_notifications(state["after"], PAGE, inclusive_of_start=False)
        if notes:
            state["after"] = notes[-1].id
        return [app.mapper.to_domain_event(n).account_id for n in notes]

    return poll


def _reader(url: str, schema: str, tasks: Any, results: Any) -> None:
    """The live tailing reader: follows each contestant's log while its writers run.

    For a task ``(side, rep)`` it reads its log up to the end, says ``ready``,
    and then polls until told ``stop`` and one more poll finds nothing new; it
    answers how many events of that repetition's streams it saw.
    """
    try:
        polls = {"c": _tail_cqrs(url, schema), "r": _tail_raw(url, schema)}
        if es.available():
            polls["e"] = _tail_es(url, schema)
        results.put(("ready", -1, 0, 0.0, 0.0))
        while (task := tasks.get()) is not None:
            side, rep = task
            poll, prefix = polls[side], f"acct-{side}{rep}-"
            while poll():
                pass
            results.put(("ready", -1, 0, 0.0, 0.0))
            # Each stream of the workload holds one event: distinct ids, so an event
            # read twice cannot hide one never read.
            seen: set[str] = set()
            stopping = False
            while True:
                got = poll()
                seen.update(sid for sid in got if sid.startswith(prefix))
                if not got:
                    if stopping:
                        break
                    with contextlib.suppress(queue.Empty):
                        stopping = tasks.get(timeout=0.005) == "stop"
            results.put(("seen", -1, len(seen), 0.0, 0.0))
    except BaseException as exc:
        results.put(("error", -1, 0, 0.0, 0.0, repr(exc)))


class WriterPool:
    """``WRITERS`` spawned writer processes and one tailing reader, each with its task queue."""

    def __init__(self, url: str, schema: str, writers: int = WRITERS) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results: Any = ctx.Queue()
        self.reads: Any = ctx.Queue()
        self.read_tasks: Any = ctx.Queue()
        self.queues: list[Any] = [ctx.Queue() for _ in range(writers)]
        self.procs: list[BaseProcess] = [
            ctx.Process(target=_writer, args=(url, schema, i, q, self.results), daemon=True)
            for i, q in enumerate(self.queues)
        ]
        self.reader = ctx.Process(
            target=_reader, args=(url, schema, self.read_tasks, self.reads), daemon=True
        )
        for proc in [*self.procs, self.reader]:
            proc.start()
        try:
            self._collect(self.results, "ready", len(self.procs))
            self._collect(self.reads, "ready", 1)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _collect(results: Any, kind: str, n: int) -> list[tuple[Any, ...]]:
        got: list[tuple[Any, ...]] = []
        while len(got) < n:
            try:
                msg = results.get(timeout=600)
            except queue.Empty:
                raise BenchmarkError("benchmark processes did not answer within 600 s") from None
            if msg[0] == "error":
                raise BenchmarkError(f"process {msg[1]} failed: {msg[5]}")
            if msg[0] != kind:
                raise BenchmarkError(f"process {msg[1]} sent {msg[0]!r}, expected {kind!r}")
            got.append(msg)
        return got

    def run(self, side: str, rep: int, per_writer: int) -> Timed:
        """Every writer appends ``per_writer`` events while the reader tails the log."""
        self.read_tasks.put((side, rep))
        self._collect(self.reads, "ready", 1)
        for q in self.queues:
            q.put((side, rep, per_writer))
        done = self._collect(self.results, "done", len(self.procs))
        self.read_tasks.put("stop")
        ((_, _, seen, _, _),) = self._collect(self.reads, "seen", 1)
        start = min(m[3] for m in done)
        end = max(m[4] for m in done)
        units = sum(m[2] for m in done)
        return Timed(units, end - start, units - seen)

    def close(self) -> None:
        """Ask every process to stop; terminate any that has not within 60 s."""
        for q in [*self.queues, self.read_tasks]:
            q.put(None)
        for proc in [*self.procs, self.reader]:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=10)


@scenario("4 concurrent writers", target=0.9, size=2000, quick_size=400)
def concurrent_writers(ctx: Context) -> Iterator[Sides]:
    """4 processes append one event per new stream, one tx each, while a reader tails the log.

    The raw baseline here is its locked variant (one advisory lock per write:
    gap-free order by locking); the table's last column is what the tailing
    reader missed, which must be 0 for cqrs.
    """
    with ctx.raw_connection(autocommit=True) as conn:
        raw.create_tables(conn)
    app = es_app(ctx)  # creates its tables before the writers start
    per_writer = max(1, ctx.size // WRITERS)
    done = {"c": 0, "r": 0, "e": 0}
    missed: dict[str, list[int]] = {"c": [], "r": [], "e": []}
    pool = WriterPool(ctx.url, ctx.schema)

    def side(name: str) -> Any:
        def run(rep: int) -> Timed:
            timed = pool.run(name, rep, per_writer)
            done[name] += timed.units
            missed[name].append(timed.missed or 0)
            return timed

        return run

    def verify() -> None:
        want = ctx.repeat * per_writer * WRITERS
        ctx.expect("events written by the cqrs writers", want, done["c"])
        check_side(ctx, "acct-c", events=done["c"], streams=done["c"])
        check_raw(ctx, "acct-r", events=done["r"], streams=done["r"])
        if app is not None:
            check_es(ctx, app, events=done["e"], aggregates=done["e"])
        ctx.expect("events the tailing reader missed of cqrs", 0, sum(missed["c"]))

    try:
        yield Sides(side("c"), side("r"), verify, side("e") if app else None)
    finally:
        pool.close()
        if app is not None:
            app.close()
