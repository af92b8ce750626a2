"""The demo behind `make demo`: append and read events on the embedded PostgreSQL.

Runs end to end on a fresh machine: starts the embedded PostgreSQL 16 (or uses
CQRS_DATABASE_URL), creates the toolkit's tables, has four threads append
orders concurrently, then reads the whole log back with the gap-free cursor.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from cqrs import NO_STREAM, START, Event, EventStore, create_schema, event
from cqrs.testing import database_url


@event("demo.order_placed")
class OrderPlaced(Event):
    order_id: str
    customer_id: str
    total: Decimal


@event("demo.order_paid")
class OrderPaid(Event):
    order_id: str
    amount: Decimal


def main(orders: int = 2000, workers: int = 4) -> None:
    url = database_url()
    engine = create_engine(url, pool_size=workers + 1)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS cqrs_demo"))
    engine = create_engine(
        url, pool_size=workers + 1, connect_args={"options": "-csearch_path=cqrs_demo"}
    )
    with engine.begin() as conn:
        create_schema(conn)
        conn.execute(text("TRUNCATE streams, events"))
    store = EventStore()

    def worker(n: int) -> None:
        for i in range(n, orders, workers):
            oid = f"order-{i}"
            with Session(engine) as s, s.begin():
                store.append(
                    s,
                    oid,
                    [OrderPlaced(oid, f"c-{i % 50}", Decimal("19.90"))],
                    expected_version=NO_STREAM,
                )
            with Session(engine) as s, s.begin():
                store.append(s, oid, [OrderPaid(oid, Decimal("19.90"))], expected_version=1)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started

    after, seen, revenue = START, 0, Decimal(0)
    with engine.connect() as conn:
        while batch := store.read_all(conn, after=after, limit=1000):
            for e in batch:
                if isinstance(e.event, OrderPaid):
                    revenue += e.event.amount
            seen += len(batch)
            after = batch[-1].position
    assert seen == 2 * orders, f"read {seen} events, wrote {2 * orders}"
    print(f"{orders} orders, {2 * orders} events by {workers} writers in {elapsed:.2f}s")
    print(f"  {2 * orders / elapsed:,.0f} events/s appended; all {seen} read back in order")
    print(f"  revenue from the log: {revenue}")
    engine.dispose()


if __name__ == "__main__":
    main()
