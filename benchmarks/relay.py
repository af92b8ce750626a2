"""Internal: the relay scenario: events out to NATS JetStream, every ack awaited.

``relay throughput`` publishes the same log of ``bench.deposited`` events
twice per repetition, each time into a fresh JetStream stream (so no side
benefits from the broker dropping repeats):

- cqrs: ``RelayRunner`` over a ``Relay`` selecting ``Deposited`` (batches of
  500 through the gap-free cursor, stored payload re-encoded, headers,
  ``publish_async`` for the batch, every ack awaited, checkpoint
  compare-and-set in the batch transaction);
- raw: a hand-written psycopg + nats-py publisher doing the same job the
  obvious way: one transaction per page of 500 (advisory lock, checkpoint,
  gap-free page), the same subject and headers, ``publish_async`` per
  message, ``gather`` of the acks, checkpoint update, commit.

The count check: each side's stream holds every event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats

from benchmarks.events import Deposited, deposited, make_store, registry
from benchmarks.harness import Context, Sides, Timed, scenario
from cqrs.relay import Relay, RelayRunner, ensure_stream
from cqrs.relay.loop import LoopThread
from cqrs.testing import nats_url

BATCH = 500
EVENTS_PER_APPEND = 10

RAW_READ = (
    "SELECT xid, global_position, event_id::text, stream_id, stream_type, version, event_type, "
    "schema_version, data, metadata, recorded_at FROM ("
    "SELECT transaction_id::text AS xid, global_position, event_id, stream_id, stream_type, "
    "version, event_type, schema_version, data::text AS data, metadata::text AS metadata, "
    "recorded_at, transaction_id AS sort_xid FROM events "
    "WHERE (transaction_id, global_position) > (%s::xid8, %s) "
    "AND event_type = 'bench.deposited' "
    "ORDER BY events.transaction_id, events.global_position LIMIT %s) page "
    "WHERE sort_xid < (SELECT pg_snapshot_xmin(pg_current_snapshot())) "
    "ORDER BY sort_xid, global_position"
)


def _seed(ctx: Context, events: int) -> None:
    store = make_store()
    accounts = max(1, events // EVENTS_PER_APPEND // 4)
    with ctx.engine.begin() as conn:
        for n in range(events // EVENTS_PER_APPEND):
            sid = f"acct-{n % accounts}"
            batch = [deposited(sid, n * EVENTS_PER_APPEND + k) for k in range(EVENTS_PER_APPEND)]
            store.append(conn, sid, batch, stream_type="account")


async def _messages(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def _delete(url: str, *streams: str) -> None:
    nc = await nats.connect(url)
    try:
        for stream in streams:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def raw_publish(conn: Any, url: str, prefix: str, expected: int) -> int:
    """The hand-written twin of the relay: the log's deposits to JetStream; events sent.

    It follows the log until ``expected`` events are out: ``pg_snapshot_xmin`` is
    the whole server's, so a transaction open in another database (another
    service or test run on a shared server) holds its pages back for a while,
    and an empty page does not mean the end of the log.
    """
    nc = await nats.connect(url)
    js = nc.jetstream()
    with conn.transaction():
        conn.execute("DELETE FROM checkpoints WHERE projection = 'bench_raw_relay'")
        conn.execute("INSERT INTO checkpoints (projection, shard) VALUES ('bench_raw_relay', 0)")
    done = 0
    try:
        while True:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('bench_raw_relay'), 0)")
                xid, pos = conn.execute(
                    "SELECT transaction_id::text, global_position FROM checkpoints "
                    "WHERE projection = 'bench_raw_relay' AND shard = 0"
                ).fetchone() or ("0", 0)
                rows = conn.execute(RAW_READ, (xid, pos, BATCH)).fetchall()
                if rows:
                    futures = []
                    for x, p, eid, sid, stype, version, etype, sv, data, _meta, at in rows:
                        headers = {
                            "Nats-Msg-Id": eid, "Cqrs-Type": etype,
                            "Cqrs-Schema-Version": str(sv), "Cqrs-Event-Type": etype,
                            "Cqrs-Stream-Id": sid, "Cqrs-Stream-Type": stype,
                            "Cqrs-Version": str(version), "Cqrs-Position": f"{x}:{p}",
                            "Cqrs-Recorded-At": at.isoformat(),
                        }  # fmt: skip
                        subject = f"{prefix}.{stype}.{etype}"
                        futures.append(
                            await js.publish_async(subject, data.encode(), headers=headers)
                        )
                    await asyncio.gather(*futures)
                    conn.execute(
                        "UPDATE checkpoints SET transaction_id = %s::xid8, global_position = %s "
                        "WHERE projection = 'bench_raw_relay' AND shard = 0",
                        (rows[-1][0], rows[-1][1]),
                    )
            done += len(rows)
            if not rows:
                if done >= expected:
                    return done
                await asyncio.sleep(0.01)
    finally:
        await nc.close()


@scenario("relay throughput", target=0.7, size=20000, quick_size=2000)
def relay_throughput(ctx: Context) -> Iterator[Sides]:
    """Publish the log to JetStream, acks awaited: RelayRunner vs a raw psycopg + nats-py relay."""
    url = nats_url()
    _seed(ctx, ctx.size)
    tag = uuid.uuid4().hex[:8]
    cqrs_prefix, raw_prefix = f"bc{tag}", f"br{tag}"
    cqrs_stream, raw_stream = f"BENCH_C_{tag}", f"BENCH_R_{tag}"
    loop = LoopThread("bench")
    conn = ctx.raw_connection()
    relay = Relay("bench_relay", prefix=cqrs_prefix, stream=cqrs_stream, batch_size=BATCH,
                  registry=registry).select(Deposited)  # fmt: skip

    def fresh(stream: str, prefix: str) -> None:
        loop.run(_delete(url, stream), timeout=30)
        ensure_stream(url, stream, [f"{prefix}.>"], duplicate_window=600)

    def cqrs(rep: int) -> Timed:
        fresh(cqrs_stream, cqrs_prefix)
        with ctx.engine.begin() as c:
            c.exec_driver_sql("DELETE FROM checkpoints WHERE projection = 'bench_relay'")
        runner = RelayRunner(ctx.engine, [relay], nats_url=url, store=make_store(),
                             listen=False)  # fmt: skip
        start = time.perf_counter()
        done = runner.run_until_caught_up()
        seconds = time.perf_counter() - start
        runner.close()
        return Timed(done, seconds)

    def raw(rep: int) -> Timed:
        fresh(raw_stream, raw_prefix)
        start = time.perf_counter()
        done = loop.run(raw_publish(conn, url, raw_prefix, ctx.size), timeout=600)
        return Timed(done, time.perf_counter() - start)

    def verify() -> None:
        ctx.expect("messages in the cqrs stream", ctx.size, loop.run(_messages(url, cqrs_stream)))
        ctx.expect("messages in the raw stream", ctx.size, loop.run(_messages(url, raw_stream)))

    try:
        with conn:
            yield Sides(cqrs, raw, verify)
    finally:
        loop.run(_delete(url, cqrs_stream, raw_stream), timeout=30)
        loop.close()
