"""Internal: whether a refused writer's stream has stored versions it can ever match.

Checked only when an append with an exact expected version was refused (a few
milliseconds per 10,000 events of the stream, on that path alone). A writer
expects the number of events it loaded; a stream whose events repeat a
version, skip one, stop short of the row's version or go past it (a bad
import, rows written by hand) refuses every such writer, and that must not
read as a conflict to retry::

    >>> # not run: it needs a stream whose stored versions are broken
    >>> inconsistency(conn, "order-1", version=3, expected=4)   # doctest: +SKIP
    StreamVersionsInconsistent("stream 'order-1' is inconsistent: ...")

A missing *prefix* (versions 1..k absent, nothing absent above) is what
``cqrs partitions archive --force`` leaves, and a writer that loaded a
snapshot taken after version k works on; it counts as inconsistent only when
the writer expected exactly the events stored (it had nothing else to count
from), so a genuine race on such a stream stays a retryable conflict.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from cqrs.errors import StreamVersionsInconsistent

# The rows read_stream reads (the same partition pruning), so the verdict is
# about the events a writer loads. The summary is one index range of the stream;
# the detail runs only for a stream found inconsistent.
SUMMARY = text(
    "SELECT count(*), count(DISTINCT version), min(version), max(version), "
    "(SELECT version FROM streams WHERE stream_id = :sid) "
    "FROM events WHERE stream_id = :sid "
    "AND recorded_at >= (SELECT created_at - interval '1 hour' FROM streams "
    "                    WHERE stream_id = :sid)"
)
DETAIL = text(
    "WITH v AS (SELECT version, count(*) AS n FROM events WHERE stream_id = :sid "
    "AND recorded_at >= (SELECT created_at - interval '1 hour' FROM streams "
    "                    WHERE stream_id = :sid) GROUP BY version) "
    "SELECT ARRAY(SELECT version FROM v WHERE n > 1 ORDER BY 1 LIMIT 1000), "
    "ARRAY(SELECT g FROM generate_series(CAST(:low AS int), CAST(:version AS int)) g "
    "      WHERE NOT EXISTS (SELECT 1 FROM v WHERE v.version = g) ORDER BY 1 LIMIT 1000), "
    "ARRAY(SELECT version FROM v WHERE version < 1 OR version > :version ORDER BY 1 LIMIT 1000)"
)


def inconsistency(
    conn: Connection, stream_id: str, *, version: int, expected: int
) -> StreamVersionsInconsistent | None:
    """The error naming how ``stream_id``'s stored versions stray from 1..``version``
    so that a writer expecting ``expected`` can never succeed, or ``None`` (the
    refusal is an ordinary conflict)."""
    count, distinct, low, high, now = conn.execute(SUMMARY, {"sid": stream_id}).one()
    if now != version:
        # The stream moved since the refusal was read (READ COMMITTED: a new snapshot
        # per statement). The row and its events are read in one snapshot here, so
        # only a verdict about the version seen now is sound: a retry will see it.
        return None
    prefix_missing = (count == 0 and version > 0) or (low is not None and low > 1)
    counted_only_these = expected == distinct
    broken = (
        count > distinct  # a version stored twice
        or (low is not None and (low < 1 or high > version))  # outside 1..version
        or (count > 0 and distinct < high - low + 1)  # a gap between the first and last
        or (high is not None and high < version)  # the row's version has no events
        or (prefix_missing and counted_only_these)
    )
    if not broken:
        return None
    start = 1 if counted_only_these or low is None or low < 1 else low  # a prefix: see above
    duplicated, missing, beyond = conn.execute(
        DETAIL, {"sid": stream_id, "version": version, "low": start}
    ).one()
    return StreamVersionsInconsistent(
        stream_id, version, duplicated=list(duplicated), missing=list(missing),
        beyond=list(beyond),
    )  # fmt: skip
