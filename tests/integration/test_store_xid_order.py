"""Regression: read_all orders by the numeric transaction id, never its text form.

A query selecting ``transaction_id::text`` under its own name made ``ORDER BY
transaction_id`` sort '10000' before '9999', and a paging reader skipped every
event of the smaller-digit transactions. Rows here carry hand-picked past
transaction ids on both sides of digit boundaries.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import Engine, text

from cqrs import START, Event, EventRegistry, EventStore, Position, event

registry = EventRegistry()


@event("xid_order.tick", registry=registry)
class Tick(Event):
    n: int


XIDS = [7, 8, 9, 10, 11, 99, 100, 101, 999, 1000, 1001]


def _burn_xids_past(engine: Engine, xid: int) -> None:
    """Seeded ids must lie in the past: a fresh cluster may not have reached them yet."""
    with engine.connect() as conn:
        while True:
            with conn.begin():
                if int(conn.execute(text("SELECT pg_current_xact_id()::text")).scalar_one()) > xid:
                    return


def _seed(engine: Engine) -> list[Position]:
    _burn_xids_past(engine, max(XIDS) + 10)
    rows = []
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO streams (stream_id, stream_type, version) VALUES ('t-1', 't', :n)"),
            {"n": len(XIDS) * 2},
        )
        version = 0
        # positions deliberately run against xid order inside each pair
        for i, xid in enumerate(XIDS):
            for pos in (1000 - 2 * i, 1000 - 2 * i + 1):
                version += 1
                conn.execute(
                    text(
                        "INSERT INTO events (global_position, transaction_id, event_id, stream_id,"
                        " stream_type, version, event_type, data) VALUES (:pos, CAST(:xid AS xid8),"
                        " :eid, 't-1', 't', :v, 'xid_order.tick', CAST(:data AS jsonb))"
                    ),
                    {
                        "pos": pos,
                        "xid": str(xid),
                        "eid": uuid.uuid4(),
                        "v": version,
                        "data": json.dumps({"n": version}),
                    },
                )
                rows.append(Position(xid, pos))
    return sorted(rows)


def test_read_all_pages_in_numeric_transaction_order(cqrs_engine: Engine) -> None:
    expected = _seed(cqrs_engine)
    store = EventStore(registry=registry)
    for page_size in (1, 2, 3, 5, 100):
        seen: list[Position] = []
        after = START
        with cqrs_engine.connect() as conn:
            while batch := store.read_all(conn, after=after, limit=page_size):
                seen += [e.position for e in batch]
                after = batch[-1].position
        assert seen == expected, f"page size {page_size}"


def test_head_is_the_numerically_last_position(cqrs_engine: Engine) -> None:
    expected = _seed(cqrs_engine)
    with cqrs_engine.connect() as conn:
        assert EventStore(registry=registry).head(conn) == expected[-1]
