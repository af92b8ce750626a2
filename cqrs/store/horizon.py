"""Public: the read horizon of the event log, and the session that holds it back.

Readers of the log (``EventStore.read_all``, the projection runner, a
rebuild) see only events whose ``transaction_id`` is below the *horizon*: the
oldest transaction that is still running and may write to this database's
``events`` table. Everything below it has ended, so no commit can ever land
behind a reader's cursor. ``horizon_holder`` names the session (or prepared
transaction) that is the horizon, for ``cqrs projections status``::

    >>> with engine.connect() as writer:            # a transaction left open
    ...     xid = writer.execute(text("SELECT pg_current_xact_id()")).scalar_one()
    ...     holder = horizon_holder(engine)
    >>> holder.describe()
    "transaction ... in database '...', pid ... (user ..., idle in transaction), ..."

The safety argument (also in docs/architecture.md, "The read horizon")
---------------------------------------------------------------------------
``pg_current_snapshot()`` gives ``xmax``, one past the newest transaction id
that had ended when the snapshot was taken (ids at or above it count as
running), and ``xip``, the ids below ``xmax`` still in progress. An event
committed after the snapshot has an id in ``xip`` or at/above ``xmax``.
PostgreSQL's own ``xmin`` is the least of them over the *whole server*, so
an open transaction in another database (another service, a batch job,
another test run) would stall every reader here.

A backend is connected to one database for its life, and a prepared
transaction records its database: neither can write this database's tables.
So the horizon is the least id of ``xip`` that is NOT positively known to
belong to another database (or to append nothing), or ``xmax`` when there is none; and never above
the reader's own transaction id once it has written. A transaction's own
snapshot does not list it in ``xip``, and ``xmax`` passes it as soon as a newer
transaction ends anywhere, yet it is still in progress: without that bound a
transaction that appended and then called ``read_all`` would read its own
uncommitted events, and a cursor it saved could pass an older transaction that
has not committed yet. "Positively
known" means one of:

* ``pg_stat_activity`` shows the id as ``backend_xid`` of a backend whose
  ``datid`` is another database's (both columns are shown to every role,
  superuser or not: checked on PostgreSQL 15 and 16);
* ``pg_prepared_xacts`` shows it with another ``database`` (readable by
  every role);
* or it may not append at all: ``pg_stat_activity`` shows it as the
  ``backend_xid`` of a session whose ``application_name`` is the mark of
  ``cqrs.store.no_append`` naming that same whole id (a projection runner's
  batch of a read model; the store refuses appends in it).

Any other id (a backend whose status is not visible, a background worker
without a database, an id that just started) keeps the horizon as it was: it
may only be too low, never too high. The pairing of a backend's database and
its xid is read from one backend slot; a wrong pairing would need that
backend to exit and another to start and write in the same slot between two
adjacent reads, and its xid would then be newer than the snapshot (not in
``xip``). Statistics are cached for the rest of a transaction, but a fact
"id X ran in database D" never stops being true, so a stale cache can only
make the horizon more conservative. ``pg_stat_activity`` gives 32-bit
``xid``; ids in ``xip`` are 64-bit ``xid8`` and all lie within 2^31 of each
other (wraparound protection), so matching the low 32 bits is exact.

Cost: nothing when no transaction is in progress (the sub-select over
``pg_stat_activity`` is not evaluated for an empty ``xip``), else one pass
over the server's backend slots per read statement.
"""

from __future__ import annotations

from datetime import datetime

import attrs
from sqlalchemy import Connection, Engine, text

from cqrs.store.no_append import NOT_APPENDING

_LOW_32 = "4294967295"

# Transaction ids positively known not to append to this database's log: ``xid32``
# their low 32 bits, ``xid64`` the whole id where known. Those running in another
# database, and those marked as appending nothing (cqrs.store.no_append), whose
# mark names the whole id.
_NOT_WRITERS = (
    "SELECT a.backend_xid::text::bigint AS xid32, NULL::bigint AS xid64 "
    "FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL "
    "AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "UNION ALL SELECT p.transaction::text::bigint, NULL FROM pg_prepared_xacts p "
    "WHERE p.database <> current_database() "
    f"UNION ALL {NOT_APPENDING}"
)

# LEAST ignores the NULL of a transaction that has not written: one that has is
# itself in progress, though its own snapshot never lists it in ``xip``.
READ_HORIZON = (
    "(SELECT least(coalesce((SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x WHERE NOT EXISTS ("
    f"SELECT 1 FROM ({_NOT_WRITERS}) f WHERE f.xid32 = (x::text::bigint & {_LOW_32}) "
    "AND (f.xid64 IS NULL OR f.xid64 = x::text::bigint))), "
    "pg_snapshot_xmax(snap.s)), pg_current_xact_id_if_assigned()) "
    "FROM (SELECT pg_current_snapshot() AS s) snap)"
)
"""A scalar SQL expression (``xid8``): the horizon of the statement's snapshot.

Use it inside the reading statement itself, so that the rows read and the
horizon come from one snapshot.
"""

HORIZON = text(f"SELECT {READ_HORIZON}::text")

_HOLDER = text(
    f"WITH h AS (SELECT {READ_HORIZON} AS xid, "
    "pg_snapshot_xmax(pg_current_snapshot()) AS xmax) "
    "SELECT h.xid::text, d.*, extract(epoch FROM clock_timestamp() - d.since)::float8 "
    "FROM h LEFT JOIN LATERAL ("
    "SELECT a.datname::text AS db, a.pid, a.usename::text AS usr, a.application_name, "
    "a.state, a.xact_start AS since, NULL::text AS gid, "
    # state is NULL where the role may not see the session; query then says so in text
    "CASE WHEN a.state IS NOT NULL THEN left(a.query, 200) END AS query "
    "FROM pg_stat_activity a "
    f"WHERE a.backend_xid::text::bigint = (h.xid::text::bigint & {_LOW_32}) "
    "UNION ALL SELECT p.database::text, NULL, p.owner::text, NULL, 'prepared', p.prepared, "
    "p.gid, NULL FROM pg_prepared_xacts p "
    f"WHERE p.transaction::text::bigint = (h.xid::text::bigint & {_LOW_32}) "
    "LIMIT 1) d ON true "
    # Below xmax the horizon is a transaction in progress, known or not. At
    # xmax it is either nothing, or the newest id handed out (xmax is one past
    # the newest id that has ended): a session of this database that holds it
    # does hold readers back.
    "WHERE h.xid < h.xmax OR d.db = current_database()"
)


@attrs.frozen
class HorizonHolder:
    """The transaction that is the read horizon: readers wait until it ends.

    ``pid`` is ``None`` for a prepared transaction (``gid`` names it; end it
    with ``COMMIT PREPARED`` or ``ROLLBACK PREPARED``). ``state``,
    ``transaction_start`` and ``query`` are ``None`` when the role may not see
    other users' sessions: grant it ``pg_read_all_stats`` to see them.
    """

    transaction_id: int
    database: str | None = None
    pid: int | None = None
    user: str | None = None
    application_name: str | None = None
    state: str | None = None
    transaction_start: datetime | None = None
    age_seconds: float | None = None
    query: str | None = None
    gid: str | None = None

    def describe(self) -> str:
        """One line for logs and error messages."""
        if self.gid is not None:
            who = f"prepared transaction {self.gid!r} (owner {self.user})"
        elif self.pid is not None:
            who = f"pid {self.pid} (user {self.user}, {self.application_name or '-'}, "
            who += f"{self.state or 'state hidden'})"
        else:
            who = "a session whose status this role cannot see"
        age = "unknown age" if self.age_seconds is None else f"open {self.age_seconds:.1f}s"
        place = f" in database {self.database!r}" if self.database else ""
        query = f": {self.query!r}" if self.query else ""
        return f"transaction {self.transaction_id}{place}, {who}, {age}{query}"


def horizon(bind: Engine | Connection) -> int:
    """The current horizon: ``read_all`` sees only events of older transactions."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return int(conn.execute(HORIZON).scalar_one())
    return int(bind.execute(HORIZON).scalar_one())


def horizon_holder(bind: Engine | Connection, *, min_age: float = 0.0) -> HorizonHolder | None:
    """The transaction holding the read horizon back, or ``None`` when nothing does.

    With ``min_age``, a holder whose transaction is younger is not reported
    (one whose age this role cannot see always is).
    """
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            row = conn.execute(_HOLDER).first()
    else:
        row = bind.execute(_HOLDER).first()
    if row is None:
        return None
    xid, db, pid, user, app, state, since, gid, query, age = row
    if age is not None and age < min_age:
        return None
    return HorizonHolder(int(xid), db, pid, user, app, state, since, age, query, gid)
