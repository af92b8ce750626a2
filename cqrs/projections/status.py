"""Public: where each projection stands, what holds readers back, and read-your-writes.

``projection_status`` lists every (projection, shard): checkpoint, events
behind, last error, parked events. ``horizon_holder`` names the session whose
open writing transaction keeps every reader behind (the price of the gap-free
cursor; set ``idle_in_transaction_session_timeout``). ``wait_for`` blocks until
a projection has passed a position token::

    result = store.append(session, "order-1", [...])
    ...
    wait_for(engine, summary, result.position, timeout=2.0)   # or raises ReadModelTimeout
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import Connection, Engine, text

from cqrs.binds import require_sync
from cqrs.errors import ReadModelTimeout
from cqrs.events.model import Position
from cqrs.projections.declarative import REBUILD_SUFFIX, Projection
from cqrs.store.horizon import HorizonHolder, horizon_holder

__all__ = ["HorizonHolder", "ShardStatus", "horizon_holder", "projection_status", "wait_for"]

STATUS = text(
    "SELECT c.projection, c.shard, c.transaction_id::text, c.global_position, c.updated_at, "
    "c.last_error, (SELECT count(*) FROM dead_letters d WHERE d.projection = c.projection "
    "AND d.shard = c.shard), (SELECT l.owner FROM projection_leases l "
    "WHERE l.projection = c.projection AND l.shard = c.shard "
    "AND l.expires_at >= clock_timestamp()) "
    "FROM checkpoints c WHERE right(c.projection, :n) <> :suffix ORDER BY 1, 2"
).bindparams(n=len(REBUILD_SUFFIX), suffix=REBUILD_SUFFIX)
BEHIND = text(
    "SELECT count(*) FROM events "
    "WHERE (transaction_id, global_position) > (CAST(:xid AS xid8), :pos)"
)
CHECKPOINTS = text(
    "SELECT shard, transaction_id::text, global_position FROM checkpoints WHERE projection = :p"
)


@attrs.frozen
class ShardStatus:
    """One shard of one projection."""

    projection: str
    shard: int
    checkpoint: Position
    behind: int
    updated_at: datetime
    last_error: str | None
    parked: int
    owner: str | None


def _conn(bind: Engine | Connection, api: str) -> tuple[Connection, bool]:
    require_sync(bind, api, "use cqrs.wait_for_async, or call it in AsyncConnection.run_sync")
    return (bind.connect(), True) if isinstance(bind, Engine) else (bind, False)


def projection_status(bind: Engine | Connection) -> list[ShardStatus]:
    """Every projection shard with a checkpoint (rebuilds in progress left out)."""
    conn, own = _conn(bind, "projection_status")
    try:
        found = []
        for name, shard, xid, pos, at, err, parked, owner in conn.execute(STATUS):
            behind = conn.execute(BEHIND, {"xid": xid, "pos": pos}).scalar_one()
            position = Position(int(xid), int(pos))
            found.append(ShardStatus(name, shard, position, behind, at, err, parked, owner))
        return found
    finally:
        if own:
            conn.close()


def wait_for(
    bind: Engine | Connection,
    projection: Projection | str,
    position: Position | str,
    *,
    timeout: float = 5.0,
    shards: int | None = None,
    interval: float = 0.005,
) -> None:
    """Block until every shard of ``projection`` has passed ``position``.

    ``position`` is a ``Position`` or its ``str()`` token. Raises
    :class:`~cqrs.errors.ReadModelTimeout` after ``timeout`` seconds.
    """
    name, target, count = wait_target(projection, position, shards)
    deadline = time.monotonic() + timeout
    conn, own = _conn(bind, "wait_for")
    try:
        while True:
            if conn.in_transaction():
                rows = conn.execute(CHECKPOINTS, {"p": name}).all()
            else:
                with conn.begin():
                    rows = conn.execute(CHECKPOINTS, {"p": name}).all()
            done, reached = passed(rows, target, count)
            if done:
                return
            if time.monotonic() >= deadline:
                raise timed_out(conn, name, target, reached, timeout)
            time.sleep(interval)
    finally:
        if own:
            conn.close()


def wait_target(
    projection: Projection | str, position: Position | str, shards: int | None
) -> tuple[str, Position, int]:
    """What a read-your-writes wait waits for: the projection's name, the target
    position, and how many shards must pass it."""
    target = Position.parse(position) if isinstance(position, str) else position
    name = projection if isinstance(projection, str) else projection.name
    count = shards or (1 if isinstance(projection, str) else projection.shards)
    return name, target, count


def passed(
    rows: Sequence[Sequence[Any]], target: Position, count: int
) -> tuple[bool, Position | None]:
    """Whether the checkpoint rows (shard, xid, position) show all ``count`` shards
    past ``target``, and the least checkpoint among them (``None`` without rows)."""
    found = [Position(int(r[1]), int(r[2])) for r in rows]
    done = len(found) >= count and all(p >= target for p in found)
    return done, min(found, default=None)


def timed_out(
    conn: Connection, name: str, target: Position, reached: Position | None, timeout: float
) -> ReadModelTimeout:
    """The ``ReadModelTimeout`` for ``name``, naming the horizon holder when there is one."""
    try:
        if conn.in_transaction():
            holder = horizon_holder(conn)
        else:
            with conn.begin():
                holder = horizon_holder(conn)
    except Exception:  # the diagnosis must not hide the timeout
        holder = None
    if holder is not None and holder.transaction_id <= target.transaction_id:
        cause = f"the read horizon is held back by {holder.describe()}; end that transaction"
    else:
        cause = (
            "check `cqrs projections status` for a stopped runner, parked events or a "
            "session holding the read horizon back"
        )
    return ReadModelTimeout(
        f"projection {name!r} did not reach position {target} within {timeout}s "
        f"(it is at {reached}); {cause}, or raise the timeout",
        holder=holder,
    )
