"""Internal: shard leases, shared among runners through PostgreSQL alone.

Every runner of a sharded projection keeps a row in ``projection_workers``
alive (``expires_at`` = now + ttl) and holds leases in ``projection_leases``
for at most its fair share, ``ceil(shards / live runners)``: it gives surplus
shards back when runners join and takes expired or free ones when runners
die. Leases spread the work; they are not what keeps it correct: every batch
still takes the (projection, shard) advisory lock, so a stale lease can never
make two runners apply the same events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from cqrs.projections.declarative import Projection

HEARTBEAT = text(
    "INSERT INTO projection_workers (projection, owner, expires_at) "
    "VALUES (:p, :o, clock_timestamp() + make_interval(secs => :ttl)) "
    "ON CONFLICT (projection, owner) DO UPDATE SET expires_at = EXCLUDED.expires_at"
)
FORGET_DEAD = text(
    "DELETE FROM projection_workers WHERE projection = :p AND expires_at < clock_timestamp()"
)
LIVE = text(
    "SELECT count(*) FROM projection_workers "
    "WHERE projection = :p AND expires_at >= clock_timestamp()"
)
RENEW = text(
    "UPDATE projection_leases SET expires_at = clock_timestamp() + make_interval(secs => :ttl) "
    "WHERE projection = :p AND owner = :o RETURNING shard"
)
RELEASE = text(
    "DELETE FROM projection_leases WHERE projection = :p AND owner = :o "
    "AND shard = ANY(CAST(:shards AS int[]))"
)
RELEASE_ALL = text("DELETE FROM projection_leases WHERE projection = :p AND owner = :o")
LEAVE = text("DELETE FROM projection_workers WHERE projection = :p AND owner = :o")
FREE = text(
    "SELECT s FROM generate_series(0, :n - 1) AS s WHERE NOT EXISTS ("
    "SELECT 1 FROM projection_leases l WHERE l.projection = :p AND l.shard = s "
    "AND l.expires_at >= clock_timestamp()) ORDER BY random() LIMIT :want"
)
CLAIM = text(
    "INSERT INTO projection_leases AS l (projection, shard, owner, expires_at) "
    "VALUES (:p, :s, :o, clock_timestamp() + make_interval(secs => :ttl)) "
    "ON CONFLICT (projection, shard) DO UPDATE SET owner = EXCLUDED.owner, "
    "expires_at = EXCLUDED.expires_at WHERE l.expires_at < clock_timestamp() OR l.owner = :o "
    "RETURNING shard"
)


class LeaseKeeper:
    """Which shards of each projection this runner (``owner``) works on."""

    def __init__(self, engine: Engine, owner: str, ttl: float) -> None:
        self.engine = engine
        self.owner = owner
        self.ttl = ttl
        self._held: dict[str, list[int]] = {}
        self._renewed: dict[str, float] = {}

    def shards(self, projection: Projection) -> list[int]:
        """The shards to work on now (all of them when the projection is not sharded)."""
        if projection.shards == 1:
            return [0]
        name = projection.name
        if time.monotonic() - self._renewed.get(name, -1e9) >= self.ttl / 3:
            self._held[name] = self.renew(projection)
            self._renewed[name] = time.monotonic()
        return self._held.get(name, [])

    def renew(self, projection: Projection) -> list[int]:
        """Heartbeat, keep the fair share, give back surplus, take free shards."""
        p, o, ttl = projection.name, self.owner, self.ttl
        with self.engine.begin() as conn:
            conn.execute(HEARTBEAT, {"p": p, "o": o, "ttl": ttl})
            conn.execute(FORGET_DEAD, {"p": p})
            live = max(1, int(conn.execute(LIVE, {"p": p}).scalar_one()))
            fair = math.ceil(projection.shards / live)
            mine = sorted(conn.execute(RENEW, {"p": p, "o": o, "ttl": ttl}).scalars())
            if len(mine) > fair:
                conn.execute(RELEASE, {"p": p, "o": o, "shards": mine[fair:]})
                mine = mine[:fair]
            elif len(mine) < fair:
                want = fair - len(mine)
                free = conn.execute(FREE, {"p": p, "n": projection.shards, "want": want})
                for shard in list(free.scalars()):
                    got = conn.execute(CLAIM, {"p": p, "s": shard, "o": o, "ttl": ttl}).first()
                    if got is not None:
                        mine.append(int(got[0]))
        return sorted(mine)

    def release_all(self, projections: Sequence[Projection]) -> None:
        """Give back every lease (a graceful stop hands shards over at once)."""
        sharded = [p for p in projections if p.shards > 1]
        if not sharded:
            return
        with self.engine.begin() as conn:
            for projection in sharded:
                conn.execute(RELEASE_ALL, {"p": projection.name, "o": self.owner})
                conn.execute(LEAVE, {"p": projection.name, "o": self.owner})
        self._held.clear()
        self._renewed.clear()
