"""Internal: ``python -m benchmarks.codec_decode``: events/s through ``EventCodec.decode``.

A micro-benchmark of the decode hot path every read takes (``read_all``, the
projection runner, ``Repository.get``), on a typical five-field event (str,
str, Decimal, int, datetime) as ``EventStore.decode`` hands it over: a freshly
parsed payload dict. Not a timed test; prints events/s for the decode and the
encode, best of seven rounds, in CPU time (process_time) so that other
processes on a shared machine weigh less.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from cqrs import Event, EventRegistry, EventStore, event
from cqrs.events import EventCodec

registry = EventRegistry()


@event("bench.order_placed", registry=registry)
class OrderPlaced(Event):
    order_id: str
    customer_id: str
    total: Decimal
    quantity: int
    placed_at: datetime


def main(n: int = 200_000, rounds: int = 7) -> None:
    codec = EventCodec(registry)
    sample = OrderPlaced("order-1", "customer-1", Decimal("12.50"), 3, datetime.now(UTC))
    name, version, text = codec.encode(sample)
    payloads = [json.loads(text) for _ in range(n)]
    where = 40
    decode = codec.decode
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        for data in payloads:
            decode(name, version, data, stream_id="order-1", position=where)
        best = max(best, n / (time.process_time() - start))
    assert decode(name, version, payloads[0], stream_id="order-1", position=where) == sample
    print(f"decode: {best:,.0f} events/s ({1e6 / best:.2f} µs/event)")
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n // 2):
            codec.encode(sample)
        best = max(best, (n // 2) / (time.process_time() - start))
    print(f"encode: {best:,.0f} events/s ({1e6 / best:.2f} µs/event)")
    # The whole row -> RecordedEvent step of every read: JSON text parsed, decoded, wrapped.
    store = EventStore(codec=codec)
    now = datetime.now(UTC)
    row = (uuid.uuid4(), "order-1", "order", 1, "812", 40, name, version, text, "{}", now)
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n // 2):
            store.decode(row)
        best = max(best, (n // 2) / (time.process_time() - start))
    print(f"EventStore.decode (row): {best:,.0f} events/s ({1e6 / best:.2f} µs/event)")


if __name__ == "__main__":
    main()
