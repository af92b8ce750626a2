"""Public: the triggers that keep the event log append-only, and the one way past them.

``events`` takes INSERTs only: a row trigger refuses UPDATE and DELETE (PostgreSQL
clones it onto every partition, also those attached later), and a statement
trigger refuses TRUNCATE on the parent and on each partition (statement triggers
are not cloned, so ``cqrs.store.partitions`` adds one to each partition it
makes). ``streams`` rows may only move forward: an UPDATE that lowers
``version`` or ``last_xid``, or sets ``last_xid`` above the writing
transaction's id, is refused, and so is an INSERT with such a ``last_xid``.

Against whom: the application roles get no UPDATE, DELETE or TRUNCATE on
``events`` in the first place (``cqrs.roles``); these triggers stop the
*owner* (the migrator, a superuser at a psql prompt) from rewriting history by
accident, and stop the service role, which needs UPDATE on ``streams.version``
for its appends, from moving a stream back. A sanctioned rewrite (a test
fixture emptying the log, an operator repairing a stream) runs as a member of
the table's owner role with the transaction-local setting ``cqrs.allow_rewrite``::

    with engine.begin() as conn:
        allow_rewrite(conn)                      # SET LOCAL cqrs.allow_rewrite = on
        conn.execute(text("DELETE FROM events"))

The setting is honoured only for members of the owner role, so a service role
that issues it gains nothing. Partition detach, archive and drop fire no row
trigger and need no setting. See docs/security.md.

The SQL here is the code's; the ``cqrs_0003`` revision spells the same text
out (frozen) and ``tests/integration/test_alembic_frozen.py`` checks they agree.
"""

from __future__ import annotations

from sqlalchemy import Connection, TextClause, text

from cqrs.sqlnames import quote, statement

__all__ = [
    "ALLOW_REWRITE",
    "EVENTS_FUNCTION",
    "STREAMS_FUNCTION",
    "TRIGGERS",
    "TRUNCATE_TRIGGER",
    "allow_rewrite",
    "guard_partition",
    "install",
    "installed",
]

ALLOW_REWRITE = "cqrs.allow_rewrite"
"""The transaction-local setting that lets a member of the owner role past the guards."""
EVENTS_FUNCTION = "cqrs_events_append_only"
STREAMS_FUNCTION = "cqrs_streams_forward_only"
TRUNCATE_TRIGGER = "events_no_truncate"

# The bypass: the setting AND membership in the owner of the table the trigger
# fired on. Evaluated only when a guard fires, never on an append.
_BYPASS = (
    "current_setting('cqrs.allow_rewrite', true) = 'on'\n"
    "       AND pg_has_role(current_user, (SELECT c.relowner FROM pg_class c"
    " WHERE c.oid = TG_RELID), 'MEMBER')"
)

EVENTS_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION cqrs_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {_BYPASS} THEN
        RETURN CASE WHEN TG_LEVEL = 'STATEMENT' THEN NULL WHEN TG_OP = 'DELETE' THEN OLD
                    ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'events is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Stored events are never changed or deleted. Retire old months with '
                     '`cqrs partitions archive` and streams with EventStore.archive; a '
                     'sanctioned rewrite runs as the owner role after '
                     'SET LOCAL cqrs.allow_rewrite = on (docs/security.md).';
END
$$"""

STREAMS_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION cqrs_streams_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {_BYPASS} THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'streams only move forward: % of stream % refused (version % -> %)',
            TG_OP, NEW.stream_id,
            CASE WHEN TG_OP = 'UPDATE' THEN OLD.version END, NEW.version
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'A stream''s version and last_xid move only through appends '
                     '(EventStore.append); a repair runs as the owner role after '
                     'SET LOCAL cqrs.allow_rewrite = on (docs/security.md).';
END
$$"""

# The WHEN clauses run in the executor without entering PL/pgSQL: an append
# (version up, last_xid = its own id) never calls the function.
TRIGGERS: tuple[tuple[str, str, TextClause], ...] = (
    (
        "events_append_only",
        "events",
        text(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION cqrs_events_append_only()"
        ),
    ),
    (
        "events_no_truncate",
        "events",
        text(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION cqrs_events_append_only()"
        ),
    ),
    (
        "streams_forward_only",
        "streams",
        text(
            "CREATE TRIGGER streams_forward_only BEFORE UPDATE ON streams FOR EACH ROW "
            "WHEN (NEW.version < OLD.version OR NEW.last_xid < OLD.last_xid "
            "OR NEW.last_xid > pg_current_xact_id()) "
            "EXECUTE FUNCTION cqrs_streams_forward_only()"
        ),
    ),
    (
        "streams_no_future_xid",
        "streams",
        text(
            "CREATE TRIGGER streams_no_future_xid BEFORE INSERT ON streams FOR EACH ROW "
            "WHEN (NEW.last_xid > pg_current_xact_id()) "
            "EXECUTE FUNCTION cqrs_streams_forward_only()"
        ),
    ),
)
"""``(name, table, CREATE TRIGGER statement)`` of each guard trigger."""


def installed(connection: Connection) -> bool:
    """Whether ``events`` in the current schema carries the append-only trigger."""
    found = connection.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'events_append_only' "
            "AND tgrelid = to_regclass('events'))"
        )
    ).scalar_one()
    return bool(found)


def guard_partition(connection: Connection, name: str) -> None:
    """Add the TRUNCATE guard to partition ``name`` when ``events`` has the guards.

    Row triggers reach partitions by themselves; statement triggers do not.
    """
    if not installed(connection):
        return
    exists = connection.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = :t "
            "AND tgrelid = to_regclass(:n))"
        ),
        {"t": TRUNCATE_TRIGGER, "n": quote(connection, name)},
    ).scalar_one()
    if not exists:
        connection.execute(
            statement(
                connection,
                "CREATE TRIGGER {trigger} BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
                trigger=TRUNCATE_TRIGGER,
                table=name,
                function=EVENTS_FUNCTION,
            )
        )


_CREATE_EVENTS_FUNCTION = text(EVENTS_FUNCTION_SQL)
_CREATE_STREAMS_FUNCTION = text(STREAMS_FUNCTION_SQL)


def install(connection: Connection) -> None:
    """Create the guard functions and triggers in the current schema (idempotent).

    ``cqrs.schema.create_schema`` calls it; migrated schemas get them from the
    ``cqrs_0003`` revision.
    """
    connection.execute(_CREATE_EVENTS_FUNCTION)
    connection.execute(_CREATE_STREAMS_FUNCTION)
    for name, table, create in TRIGGERS:
        connection.execute(
            statement(
                connection, "DROP TRIGGER IF EXISTS {name} ON {table}", name=name, table=table
            )
        )
        connection.execute(create)
    partitions = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('events') ORDER BY 1"
        )
    ).scalars()
    for partition in list(partitions):
        guard_partition(connection, partition)


def allow_rewrite(connection: Connection) -> None:
    """Let this transaction UPDATE, DELETE or TRUNCATE ``events`` and move ``streams``
    back, when the connection's role is a member of the tables' owner.

    Transaction-local (``SET LOCAL``): it ends with the transaction. For another
    role it changes nothing; the guards still refuse.

    >>> from sqlalchemy import text
    >>> with engine.begin() as conn:
    ...     allow_rewrite(conn)
    ...     _ = conn.execute(text("DELETE FROM events"))
    """
    connection.execute(text("SELECT set_config(:k, 'on', true)"), {"k": ALLOW_REWRITE})
