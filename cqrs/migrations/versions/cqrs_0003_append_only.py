"""The append-only guards: ``events`` refuses UPDATE, DELETE and TRUNCATE, and a
``streams`` row only moves forward.

* ``events_append_only``: a ``BEFORE UPDATE OR DELETE`` row trigger on the
  partitioned ``events`` (PostgreSQL clones it onto every partition, present and
  future);
* ``events_no_truncate``: a ``BEFORE TRUNCATE`` statement trigger on ``events``
  and on each partition (statement triggers are not cloned; partitions made
  later by ``cqrs.store.partitions`` get theirs when attached);
* ``streams_forward_only`` / ``streams_no_future_xid``: an UPDATE that lowers
  ``version`` or ``last_xid``, or any write that sets ``last_xid`` above the
  writing transaction's id, is refused. The ``WHEN`` clauses keep appends out of
  PL/pgSQL.

Each guard lets a transaction through when ``cqrs.allow_rewrite`` is ``on``
(``SET LOCAL``) and its role is a member of the table's owner: the migrator's
sanctioned rewrites. Application roles are kept out by their grants
(``op.grant_cqrs_roles``); see docs/security.md for the reasoning.

Frozen like ``cqrs_0001``: the SQL is written out here, not read from
``cqrs.store.guards`` (``tests/integration/test_alembic_frozen.py`` checks the two
build the same).

Revision ID: cqrs_0003
Revises: cqrs_0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "cqrs_0003"
down_revision: str | None = "cqrs_0002"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

BYPASS = (
    "current_setting('cqrs.allow_rewrite', true) = 'on'\n"
    "       AND pg_has_role(current_user, (SELECT c.relowner FROM pg_class c"
    " WHERE c.oid = TG_RELID), 'MEMBER')"
)

EVENTS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION cqrs_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {BYPASS} THEN
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

STREAMS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION cqrs_streams_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {BYPASS} THEN
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

TRIGGERS = (
    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events FOR EACH ROW "
    "EXECUTE FUNCTION cqrs_events_append_only()",
    "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events FOR EACH STATEMENT "
    "EXECUTE FUNCTION cqrs_events_append_only()",
    "CREATE TRIGGER streams_forward_only BEFORE UPDATE ON streams FOR EACH ROW "
    "WHEN (NEW.version < OLD.version OR NEW.last_xid < OLD.last_xid "
    "OR NEW.last_xid > pg_current_xact_id()) "
    "EXECUTE FUNCTION cqrs_streams_forward_only()",
    "CREATE TRIGGER streams_no_future_xid BEFORE INSERT ON streams FOR EACH ROW "
    "WHEN (NEW.last_xid > pg_current_xact_id()) "
    "EXECUTE FUNCTION cqrs_streams_forward_only()",
)

# One DO block, so offline (--sql) output guards the partitions there are then.
PARTITION_TRIGGERS = """
DO $$
DECLARE p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits
             WHERE inhparent = 'events'::regclass ORDER BY 1 LOOP
        EXECUTE 'CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ' || p::text
             || ' FOR EACH STATEMENT EXECUTE FUNCTION cqrs_events_append_only()';
    END LOOP;
END
$$"""


def upgrade() -> None:
    op.execute(EVENTS_FUNCTION)
    op.execute(STREAMS_FUNCTION)
    for statement in TRIGGERS:
        op.execute(statement)
    op.execute(PARTITION_TRIGGERS)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS streams_no_future_xid ON streams")
    op.execute("DROP TRIGGER IF EXISTS streams_forward_only ON streams")
    op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
    # CASCADE: the TRUNCATE triggers of partitions, also of detached and archived ones.
    op.execute("DROP FUNCTION IF EXISTS cqrs_events_append_only() CASCADE")
    op.execute("DROP FUNCTION IF EXISTS cqrs_streams_forward_only()")
