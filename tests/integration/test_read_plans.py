"""Internal: the log's page reads run in index order, whatever the planner knows.

A page of ``read_all`` (and of the projection runner) must come from the
``(transaction_id, global_position)`` index, stopping after ``limit`` rows. On
a young partition without statistics the planner once chose a bitmap scan of
every event after the cursor plus a sort, one page at a time: quadratic in the
log's length. These tests read the plan PostgreSQL picks before any ANALYZE,
and after one over a log of one large transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from cqrs.projections.sql import read_batch
from cqrs.store import sql

TRANSACTIONS, PER_TRANSACTION = 20, 1000

SEED = text(
    "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
    "schema_version, data, metadata) "
    "SELECT gen_random_uuid(), :sid, 'plan', n, 'plan.noted', 1, "
    "jsonb_build_object('n', n), '{}'::jsonb FROM generate_series(1, :n) AS n"
)


RARE = text(
    "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, "
    "schema_version, data, metadata) "
    "SELECT gen_random_uuid(), :sid, 'plan', n, 'plan.rare', 1, "
    "jsonb_build_object('n', n), '{}'::jsonb FROM generate_series(1, :n) AS n"
)


def _seed(engine: Engine, *, one_transaction: bool = False) -> tuple[str, int]:
    """Many transactions of events (or all in one); the cursor a quarter of the way in."""
    with engine.connect() as conn:
        for t in range(TRANSACTIONS):
            conn.execute(SEED, {"sid": f"plan-{t}", "n": PER_TRANSACTION})
            if not one_transaction:
                conn.commit()
        conn.commit()
    with engine.connect() as conn:
        xid, pos = conn.execute(
            text(
                "SELECT transaction_id::text, global_position FROM events "
                "ORDER BY transaction_id, global_position OFFSET :k LIMIT 1"
            ),
            {"k": TRANSACTIONS * PER_TRANSACTION // 4},
        ).one()
    return str(xid), int(pos)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _plan(engine: Engine, statement: str, params: dict[str, Any]) -> dict[str, Any]:
    """The plan PostgreSQL picks for ``statement`` with ``params`` (EXPLAIN, as JSON)."""
    with engine.connect() as conn:
        raw = conn.execute(text("EXPLAIN (FORMAT JSON) " + statement), params).scalar_one()
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return plan


def _limits_fed_in_index_order(plan: dict[str, Any]) -> None:
    """Every LIMIT in the plan reads an index in order: no sort, no bitmap scan below it."""
    limits = [node for node in _nodes(plan) if node["Node Type"] == "Limit"]
    assert limits, plan
    for limit in limits:
        below = {node["Node Type"] for node in _nodes(limit) if _reads_the_log(node)}
        assert not below & {"Sort", "Incremental Sort", "Bitmap Heap Scan"}, json.dumps(limit)
        assert below & {"Index Scan", "Index Only Scan"}, json.dumps(limit)


def _reads_the_log(node: dict[str, Any]) -> bool:
    """Whether the plan node reads ``events`` (a partition), itself or below it."""
    return any(n.get("Relation Name", "").startswith("events") for n in _nodes(node))


def _no_sort_above_the_page(plan: dict[str, Any]) -> None:
    """No Sort node takes rows from a scan of the log: the page leaves in the index's order."""
    for node in _nodes(plan):
        if node["Node Type"] in {"Sort", "Incremental Sort"}:
            assert not _reads_the_log(node), json.dumps(node)


def test_read_all_pages_in_index_order(log_engine: Engine) -> None:
    xid, pos = _seed(log_engine)
    params = {"xid": xid, "pos": pos, "lim": 1000}
    _limits_fed_in_index_order(_plan(log_engine, str(sql.READ_ALL), params))


def test_a_cursor_inside_a_large_analyzed_transaction_pages_in_index_order(
    log_engine: Engine,
) -> None:
    """Statistics that know the cursor's transaction id as the log's last (an import,
    a batch of many events) once made the planner expect nothing after it: each
    page read and sorted every event after the cursor (16 ms instead of 0.8 at
    20,000 events). The cursor's values are hidden from the planner
    (``sql._CURSOR``)."""
    xid, pos = _seed(log_engine, one_transaction=True)
    with log_engine.begin() as conn:
        conn.execute(text("ANALYZE events"))
    params = {"xid": xid, "pos": pos, "lim": 1000}
    _limits_fed_in_index_order(_plan(log_engine, str(sql.READ_ALL), params))
    params["types"] = ["plan.noted"]
    _limits_fed_in_index_order(_plan(log_engine, str(sql.READ_ALL_TYPES), params))


@pytest.mark.parametrize("windowed", [True, False], ids=["windowed", "whole-window"])
@pytest.mark.parametrize(("typed", "sharded"), [(False, False), (True, False), (True, True)])
def test_runner_batches_in_index_order(
    log_engine: Engine, typed: bool, sharded: bool, windowed: bool
) -> None:
    xid, pos = _seed(log_engine)
    with log_engine.begin() as conn:
        conn.execute(text("DELETE FROM checkpoints WHERE projection = 'plan'"))
        conn.execute(
            text(
                "INSERT INTO checkpoints (projection, shard, transaction_id, global_position) "
                "VALUES ('plan', 0, CAST(:xid AS xid8), :pos)"
            ),
            {"xid": xid, "pos": pos},
        )
    params = {"p": "plan", "s": 0, "fast": False, "mark": False, "lim": 1000, "scan": 1000}
    params["types"] = ["plan.noted"]
    params["shards"] = 4
    plan = _plan(log_engine, read_batch(typed=typed, sharded=sharded, windowed=windowed), params)
    _limits_fed_in_index_order(plan)
    # A window no wider than the page comes back whole: nothing spools it.
    windows = [n for n in _nodes(plan) if n["Node Type"] == "WindowAgg"]
    assert bool(windows) == windowed, windows
    # The head row joins the page by a merge, not by a join that makes a sort of the page.
    _no_sort_above_the_page(plan)


def test_read_all_of_a_rare_type_uses_the_type_index(log_engine: Engine) -> None:
    """``read_all(types=[...])`` of a rare type reads ``ix_events_type_time``, not the log.

    This is the index's one reader (docs/scale.md, "Storage"): without it a page
    of a type that is 0.5 % of the log scans events in log order until it has
    ``limit`` of them (measured at 200k events: 65 ms a page instead of 7).
    """
    _seed(log_engine)
    with log_engine.begin() as conn:
        conn.execute(RARE, {"sid": "rare-1", "n": 100})
        conn.execute(text("ANALYZE events"))
    params = {"xid": "0", "pos": 0, "lim": 1000, "types": ["plan.rare"]}
    plan = _plan(log_engine, str(sql.READ_ALL_TYPES), params)
    indexes = {node.get("Index Name", "") for node in _nodes(plan)}
    assert any("type_time" in i or "event_type_recorded_at" in i for i in indexes), indexes
