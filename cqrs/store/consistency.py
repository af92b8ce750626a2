"""Internal: whether a stream's stored events run 1..version once each.

Checked only when an append was refused with an exact expected version: a
stream whose events repeat or skip a version (a bad import, rows inserted by
hand) refuses every writer that counts the events it loaded, and that must
not read as a conflict to retry::

    >>> inconsistency(conn, "order-1", 3)   # doctest: +SKIP
    StreamVersionsInconsistent("stream 'order-1' is inconsistent: ...")
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from cqrs.errors import StreamVersionsInconsistent

# The rows read_stream reads (the same partition pruning), so the verdict is
# about the events a writer loads. The first statement is cheap (one index
# range of the stream); the second runs only on a stream found inconsistent.
_ROWS = (
    "FROM events WHERE stream_id = :sid "
    "AND recorded_at >= (SELECT created_at - interval '1 hour' FROM streams "
    "                    WHERE stream_id = :sid)"
)
SUMMARY = text(f"SELECT count(*), count(DISTINCT version), min(version), max(version) {_ROWS}")
DETAIL = text(
    f"WITH v AS (SELECT version, count(*) AS n {_ROWS} GROUP BY version) "
    "SELECT ARRAY(SELECT version FROM v WHERE n > 1 ORDER BY 1 LIMIT 1000), "
    "ARRAY(SELECT g FROM generate_series(1, :version) g "
    "      WHERE NOT EXISTS (SELECT 1 FROM v WHERE v.version = g) ORDER BY 1 LIMIT 1000), "
    "ARRAY(SELECT version FROM v WHERE version < 1 OR version > :version ORDER BY 1 LIMIT 1000)"
)


def inconsistency(
    conn: Connection, stream_id: str, version: int
) -> StreamVersionsInconsistent | None:
    """The error describing how ``stream_id``'s events stray from 1..``version``, or
    ``None`` when they run 1..``version`` once each."""
    count, distinct, low, high = conn.execute(SUMMARY, {"sid": stream_id}).one()
    if count == distinct == version and (version == 0 or (low == 1 and high == version)):
        return None
    duplicated, missing, beyond = conn.execute(DETAIL, {"sid": stream_id, "version": version}).one()
    return StreamVersionsInconsistent(
        stream_id, version, duplicated=list(duplicated), missing=list(missing),
        beyond=list(beyond),
    )  # fmt: skip
