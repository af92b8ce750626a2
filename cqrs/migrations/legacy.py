"""Public: move an unpartitioned events table into the partitioned layout.

The recipe (``docs/guides/migrating-legacy-events.md``): build a partitioned
shadow table ``events_shadow`` with the partitions the old rows need, copy
the rows across in id order, then - under a lock that stops writers but not
readers - copy the last rows, fill ``streams``, check the counts, and swap
names: the old table becomes ``events_legacy`` (kept, never dropped), the
shadow becomes ``events``. Given an ``Engine``, the bulk copy runs in batches
of its own transactions while the old table stays in use, and a second run
resumes where the first stopped; given a ``Connection``, everything happens in
the caller's transaction.

The old layout (the origin document's)::

    events(id bigserial, event_id uuid unique, event_type, aggregate_id,
           aggregate_type, event_data jsonb, metadata jsonb, version int,
           created_at timestamptz)

    >>> import_legacy_events(engine)  # needs a database still on the old layout
    ...     # doctest: +SKIP
    LegacyImportResult(events=120000, streams=9000, partitions=[...])
"""

from __future__ import annotations

from datetime import date

import attrs
from sqlalchemy import Connection, Engine, MetaData, Table, text
from sqlalchemy.schema import CreateSequence
from sqlalchemy.sql.elements import quoted_name

from cqrs.config import Settings
from cqrs.errors import LegacyImportError
from cqrs.sqlnames import statement
from cqrs.store import guards, partitions
from cqrs.store import tables as store_tables
from cqrs.store.base import NAMING_CONVENTION

SHADOW = "events_shadow"
COLUMNS = (
    "id",
    "event_id",
    "event_type",
    "aggregate_id",
    "aggregate_type",
    "event_data",
    "metadata",
    "version",
    "created_at",
)
IMPORTED_TRANSACTION_ID = 1
"""Imported events carry this ``transaction_id``: they sort before anything appended
later, in the old table's id order (``global_position`` keeps the old id)."""

# Templates for cqrs.sqlnames.statement: {shadow} and {source} are quoted names,
# {imported} the IMPORTED_TRANSACTION_ID literal ("{{}}" is a literal "{}").
_COPY = """
INSERT INTO {shadow} (global_position, transaction_id, event_id, stream_id, stream_type,
                      version, event_type, schema_version, data, metadata, recorded_at)
SELECT l.id, CAST(CAST({imported} AS text) AS xid8), COALESCE(l.event_id, gen_random_uuid()),
       l.aggregate_id::text, l.aggregate_type, l.version, l.event_type, 1,
       COALESCE(l.event_data, '{{}}'::jsonb), COALESCE(l.metadata, '{{}}'::jsonb), l.created_at
FROM {source} l WHERE l.id > :after AND l.id <= :upto ORDER BY l.id
"""

_STREAMS = """
INSERT INTO streams (stream_id, stream_type, version, created_at)
SELECT l.aggregate_id::text, (array_agg(l.aggregate_type ORDER BY l.version DESC))[1],
       max(l.version), min(l.created_at)
FROM {source} l GROUP BY l.aggregate_id
"""


@attrs.frozen
class LegacyImportResult:
    """How many events and streams were imported, and the partitions made for them."""

    events: int
    streams: int
    partitions: list[str]


def import_legacy_events(
    bind: Engine | Connection,
    *,
    source: str = "events",
    settings: Settings | None = None,
    keep_source_as: str = "events_legacy",
    batch_size: int = 50_000,
    today: date | None = None,
    create_tables: bool = True,
) -> LegacyImportResult:
    """Import ``source`` into a partitioned ``events`` and swap; see the module doc.

    With ``create_tables`` (the default) the sequence, ``streams``, the other
    toolkit tables and ``events_shadow`` are made from ``cqrs.schema.metadata``
    where missing. ``create_tables=False`` is for a caller that made them itself
    (the frozen ``cqrs_0001`` revision does, so a later change to a table class
    cannot change what that revision does); ``streams`` and ``events_shadow``
    must exist then.

    Raises ``LegacyImportError`` (nothing swapped, the old table untouched) when
    the table is missing or partitioned already, lacks a column, has ``NULL``
    stream ids, versions or times, or holds two rows for one
    ``(aggregate_id, version)``.
    """
    settings = settings or Settings()
    if isinstance(bind, Connection):
        _prepare(bind, source, keep_source_as, settings, today, create_tables)
        _copy(bind, source, batch_size)
        return _finish(bind, source, keep_source_as, settings, today, create_tables)
    with bind.begin() as conn:
        _prepare(conn, source, keep_source_as, settings, today, create_tables)
    while True:
        with bind.begin() as conn:
            if not _copy(conn, source, batch_size, batches=1):
                break
    with bind.begin() as conn:
        return _finish(conn, source, keep_source_as, settings, today, create_tables)


def _exists(conn: Connection, name: str) -> str | None:
    """The relkind of ``name`` in the current schema, or ``None``."""
    return conn.execute(
        text(
            "SELECT relkind::text FROM pg_class "
            "WHERE relname = :n AND relnamespace = current_schema()::regnamespace"
        ),
        {"n": name},
    ).scalar_one_or_none()


def _validate(conn: Connection, source: str, keep_source_as: str) -> None:
    kind = _exists(conn, source)
    if kind is None:
        raise LegacyImportError(f"no table {source!r} in the current schema to import")
    if kind != "r":
        raise LegacyImportError(
            f"{source!r} is not a plain table (relkind {kind!r}): it is partitioned already "
            "or not a table; nothing to import"
        )
    if _exists(conn, keep_source_as) is not None:
        raise LegacyImportError(
            f"{keep_source_as!r} exists already; drop it or pass another keep_source_as"
        )
    target = _exists(conn, store_tables.events.name)
    if source != store_tables.events.name and target is not None:
        raise LegacyImportError(
            "an events table exists already; import into an empty schema, or name "
            "the old table as source='events'"
        )
    found = set(
        conn.execute(
            text(
                "SELECT attname FROM pg_attribute "
                "WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped"
            ),
            {"t": source},
        ).scalars()
    )
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise LegacyImportError(f"{source!r} lacks the columns {missing}; rename or add them")
    nulls = conn.execute(
        statement(
            conn,
            "SELECT count(*) FROM {source} WHERE aggregate_id IS NULL OR version IS NULL "
            "OR created_at IS NULL OR aggregate_type IS NULL OR event_type IS NULL",
            source=source,
        )
    ).scalar_one()
    if nulls:
        raise LegacyImportError(
            f"{nulls} rows of {source!r} have NULL aggregate_id, aggregate_type, event_type, "
            "version or created_at; fill them in first"
        )
    dupes = conn.execute(
        statement(
            conn,
            "SELECT aggregate_id::text, version FROM {source} GROUP BY aggregate_id, version "
            "HAVING count(*) > 1 ORDER BY 1, 2 LIMIT 5",
            source=source,
        )
    ).all()
    if dupes:
        shown = ", ".join(f"({a!r}, {v})" for a, v in dupes)
        raise LegacyImportError(
            f"{source!r} holds several rows for one (aggregate_id, version): {shown}; the old "
            "MAX(version)+1 publisher raced. Renumber those streams' versions, then import"
        )


def _shadow_table(settings: Settings) -> Table:
    from cqrs.schema import events_table_for

    table = events_table_for(settings).to_metadata(
        MetaData(naming_convention=NAMING_CONVENTION), name=SHADOW
    )
    for index in table.indexes:
        index.name = quoted_name(f"{index.name}_shadow", None)
    table.primary_key.name = quoted_name(f"pk_{SHADOW}", None)
    return table


def _prepare(
    conn: Connection,
    source: str,
    keep: str,
    settings: Settings,
    today: date | None,
    create_tables: bool = True,
) -> None:
    from cqrs.schema import metadata

    _validate(conn, source, keep)
    if create_tables:
        conn.execute(CreateSequence(store_tables.global_position_seq, if_not_exists=True))
        others = [t for t in metadata.sorted_tables if t.name != store_tables.events.name]
        metadata.create_all(conn, tables=others, checkfirst=True)
        if _exists(conn, SHADOW) is None:
            _shadow_table(settings).create(conn)
    else:
        missing = [t for t in (store_tables.streams.name, SHADOW) if _exists(conn, t) is None]
        if missing:
            raise LegacyImportError(
                f"create_tables=False but {missing} do not exist; create them first "
                "(as the cqrs_0001 revision does) or pass create_tables=True"
            )
    _partitions(conn, source, settings, today)


def _partitions(conn: Connection, source: str, settings: Settings, today: date | None) -> list[str]:
    if settings.partitioning == "hash":
        return partitions.ensure_hash(conn, settings.hash_partitions, parent=SHADOW)
    first, last, now = conn.execute(
        statement(
            conn,
            "SELECT (min(created_at) AT TIME ZONE 'UTC')::date, "
            "(max(created_at) AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date "
            "FROM {source}",
            source=source,
        )
    ).one()
    now = today or now
    first = min(first or now, now).replace(day=1)
    last = max(last or now, now)
    count = (last.year - first.year) * 12 + last.month - first.month + 1 + settings.months_ahead
    return partitions.ensure_months(conn, first, count, parent=SHADOW)


def _copy(conn: Connection, source: str, batch_size: int, batches: int | None = None) -> int:
    """Copy rows not yet in the shadow, ``batches`` batches at most; answer how many."""
    sql = statement(conn, _COPY, shadow=SHADOW, source=source, imported=IMPORTED_TRANSACTION_ID)
    last = statement(conn, "SELECT COALESCE(max(global_position), 0) FROM {shadow}", shadow=SHADOW)
    ahead = statement(
        conn,
        "SELECT max(id) FROM (SELECT id FROM {source} WHERE id > :a ORDER BY id LIMIT :n) b",
        source=source,
    )
    copied = 0
    while batches is None or batches > 0:
        start = conn.execute(last).scalar_one()
        upto = conn.execute(ahead, {"a": start, "n": batch_size}).scalar_one()
        if upto is None:
            break
        copied += conn.execute(sql, {"after": start, "upto": upto}).rowcount
        if batches is not None:
            batches -= 1
    return copied


def _shadow_indexes(conn: Connection) -> list[str]:
    """The indexes of the (just renamed) ``events`` that still carry ``_shadow``."""
    rows = conn.execute(
        text(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = to_regclass('events') AND i.relname LIKE '%\\_shadow' "
            "ORDER BY 1"
        )
    )
    return [str(name) for name in rows.scalars()]


def _finish(
    conn: Connection,
    source: str,
    keep: str,
    settings: Settings,
    today: date | None,
    guard: bool = True,
) -> LegacyImportResult:
    conn.execute(statement(conn, "LOCK TABLE {source} IN SHARE ROW EXCLUSIVE MODE", source=source))
    _validate(conn, source, keep)
    made = _partitions(conn, source, settings, today)
    _copy(conn, source, batch_size=1_000_000)
    count = "SELECT count(*) FROM {table}"
    legacy = conn.execute(statement(conn, count, table=source)).scalar_one()
    imported = conn.execute(statement(conn, count, table=SHADOW)).scalar_one()
    if legacy != imported:
        raise LegacyImportError(
            f"{source!r} holds {legacy} rows but {imported} were copied (were rows deleted or "
            "renumbered during the import?); nothing was swapped, run the import again"
        )
    streams = conn.execute(statement(conn, _STREAMS, source=source)).rowcount
    rename = "ALTER TABLE {old} RENAME TO {new}"
    conn.execute(statement(conn, rename, old=source, new=keep))
    conn.execute(statement(conn, rename, old=SHADOW, new=store_tables.events.name))
    conn.execute(
        statement(
            conn,
            "ALTER TABLE {events} RENAME CONSTRAINT {old} TO {new}",
            events=store_tables.events.name,
            old=f"pk_{SHADOW}",
            new="pk_events",
        )
    )
    for index in _shadow_indexes(conn):  # the shadow's own, not today's metadata's
        renamed = index.removesuffix("_shadow")
        conn.execute(statement(conn, "ALTER INDEX {old} RENAME TO {new}", old=index, new=renamed))
    conn.execute(
        text(
            "SELECT setval('events_global_position_seq', "
            "GREATEST((SELECT max(global_position) FROM events), 1))"
        )
    )
    if guard:  # the tables came from the metadata: the guards come with them, as in
        guards.install(conn)  # create_schema (inside the branch, revision cqrs_0003 adds them)
    names = [p.name for p in partitions.list_partitions(conn)]
    return LegacyImportResult(int(imported), int(streams), sorted(set(names) | set(made)))
