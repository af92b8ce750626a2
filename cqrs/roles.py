"""Public: the three database roles a service runs under, and the SQL that grants them.

* **migrator** owns the schema: it runs ``alembic upgrade``, partition upkeep
  (``cqrs partitions ensure|detach|archive``) and, being the owner, is the only
  role the append-only guards (``cqrs.store.guards``) ever let past;
* **service** appends and reads: SELECT and INSERT on ``events`` (not on
  ``transaction_id``, ``global_position`` or ``recorded_at``, so their defaults
  always apply), INSERT on ``streams`` and UPDATE of ``version`` and
  ``last_xid`` only (what an append writes), ``snapshots``,
  ``processed_commands``, its inline read models, SELECT on the projection
  tables (status, read-your-writes);
* **runner** reads the log and writes only its read models, ``checkpoints``,
  ``dead_letters`` and the shard leases.

Neither application role gets UPDATE, DELETE or TRUNCATE on ``events``, UPDATE
of ``streams.archived`` (archiving a stream is the migrator's), nor any
privilege to change the schema. ``grant_statements`` writes the SQL
(``cqrs roles sql`` prints it); ``grant_roles`` runs it as the owner; the
Alembic operation ``op.grant_cqrs_roles`` (``cqrs.migrations.ops``) runs it in a
migration. Every statement is idempotent, and each run first revokes what the
two roles held on the toolkit's tables, so the grants are exactly these.

    >>> roles = CqrsRoles(service="orders_app", runner="orders_runner")
    >>> print(grant_statements(roles, schema="orders")[0])
    GRANT USAGE ON SCHEMA orders TO orders_app, orders_runner
    >>> # grant_roles needs the roles on the server (cluster-wide): tests/integration/test_roles.py
    >>> grant_roles(conn, roles)  # doctest: +SKIP

See docs/security.md for the threat model and what is and is not protected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql.base import PGDialect

from cqrs import sqlnames
from cqrs.errors import InvalidInput

__all__ = [
    "APPEND_COLUMNS",
    "RUNNER_TABLES",
    "SERVICE_TABLES",
    "STREAM_INSERT_COLUMNS",
    "STREAM_UPDATE_COLUMNS",
    "TOOLKIT_TABLES",
    "CqrsRoles",
    "grant_roles",
    "grant_statements",
]

APPEND_COLUMNS = (
    "event_id",
    "stream_id",
    "stream_type",
    "version",
    "event_type",
    "schema_version",
    "data",
    "metadata",
)
"""The ``events`` columns the service may write; the rest come from their defaults."""
STREAM_INSERT_COLUMNS = ("stream_id", "stream_type", "version", "last_xid")
STREAM_UPDATE_COLUMNS = ("version", "last_xid")
"""What an append updates; ``archived``, ``stream_type`` and ``created_at`` stay the migrator's."""
SERVICE_TABLES = {
    "snapshots": "SELECT, INSERT, UPDATE",
    "processed_commands": "SELECT, INSERT, UPDATE",
}
SERVICE_READS = ("checkpoints", "dead_letters", "projection_leases", "projection_workers")
RUNNER_TABLES = ("checkpoints", "dead_letters", "projection_leases", "projection_workers")
"""The runner's own tables: SELECT, INSERT, UPDATE, DELETE."""
TOOLKIT_TABLES = (
    "checkpoints",
    "dead_letters",
    "events",
    "processed_commands",
    "projection_leases",
    "projection_workers",
    "snapshots",
    "streams",
)
SEQUENCES = ("events_global_position_seq", "dead_letters_id_seq")
FUNCTIONS = ("cqrs_events_append_only()", "cqrs_streams_forward_only()")
READ_MODEL = "SELECT, INSERT, UPDATE, DELETE"


def _as_tuple(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidInput(f"pass a list of table names, not the string {values!r}")
    return tuple(values)


@attrs.frozen
class CqrsRoles:
    """The role names, and the read-model tables each application role writes.

    ``migrator`` (optional) is made the owner of the toolkit's tables, sequences
    and guard functions; leave it out when the role that runs the migrations owns
    them already. ``service_tables`` are the inline projections' read models,
    ``runner_tables`` the runner's (a table may be in both).
    ``create=True`` makes missing roles (``NOLOGIN``: grant them to your login
    roles, ``GRANT orders_app TO orders_web``), which needs ``CREATEROLE``.
    """

    service: str
    runner: str
    migrator: str | None = None
    service_tables: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)
    runner_tables: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)
    create: bool = False

    def __attrs_post_init__(self) -> None:
        names = [self.service, self.runner] + ([self.migrator] if self.migrator else [])
        if any(not isinstance(n, str) or not n.strip() for n in names):
            raise InvalidInput("role names must be non-empty strings, e.g. service='orders_app'")
        if len(set(names)) != len(names):
            raise InvalidInput(
                f"the roles must be three different roles (got {names}): a shared role "
                "would hold the union of the grants; see docs/security.md"
            )
        for table in self.service_tables + self.runner_tables:
            if table in TOOLKIT_TABLES:
                raise InvalidInput(
                    f"{table!r} is a toolkit table, granted by its role already; list only "
                    "your read-model tables in service_tables / runner_tables"
                )


_DIALECT: Any = PGDialect()  # type: ignore[no-untyped-call]


def _default_quote(name: str) -> str:
    return sqlnames.quote(_DIALECT, name)


def grant_statements(
    roles: CqrsRoles, *, schema: str = "public", quote: Callable[[str], str] | None = None
) -> list[str]:
    """The SQL that creates (with ``roles.create``), owns and grants, in order.

    ``schema`` is where the toolkit's tables live. Run it as their owner (or a
    superuser); ``cqrs roles sql`` prints it for a DBA.
    """
    q = quote or _default_quote
    s = q(schema)
    service, runner = q(roles.service), q(roles.runner)

    def t(name: str) -> str:
        return f"{s}.{q(name)}"

    out: list[str] = []
    if roles.create:
        for name in filter(None, (roles.migrator, roles.service, roles.runner)):
            literal = name.replace("'", "''")
            out.append(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                f"'{literal}') THEN CREATE ROLE {q(name)} NOLOGIN; END IF; END $$"
            )
    out.append(f"GRANT USAGE ON SCHEMA {s} TO {service}, {runner}")
    if roles.migrator:
        migrator = q(roles.migrator)
        out.append(f"GRANT USAGE, CREATE ON SCHEMA {s} TO {migrator}")
        # ALTER TABLE moves the sequences a table owns (dead_letters_id_seq) along.
        out += [f"ALTER TABLE {t(name)} OWNER TO {migrator}" for name in TOOLKIT_TABLES]
        out.append(_own_partitions(t("events"), migrator))
        out.append(f"ALTER SEQUENCE {t('events_global_position_seq')} OWNER TO {migrator}")
        out += [f"ALTER FUNCTION {s}.{f} OWNER TO {migrator}" for f in FUNCTIONS]
    tables = ", ".join(t(name) for name in TOOLKIT_TABLES)
    out.append(f"REVOKE ALL ON {tables} FROM {service}, {runner}")
    out.append(
        f"REVOKE ALL ON SEQUENCE {', '.join(t(n) for n in SEQUENCES)} FROM {service}, {runner}"
    )
    # service: append and read
    out.append(f"GRANT SELECT, INSERT ({', '.join(APPEND_COLUMNS)}) ON {t('events')} TO {service}")
    out.append(f"GRANT USAGE ON SEQUENCE {t('events_global_position_seq')} TO {service}")
    out.append(
        f"GRANT SELECT, INSERT ({', '.join(STREAM_INSERT_COLUMNS)}), "
        f"UPDATE ({', '.join(STREAM_UPDATE_COLUMNS)}) ON {t('streams')} TO {service}"
    )
    out += [f"GRANT {what} ON {t(name)} TO {service}" for name, what in SERVICE_TABLES.items()]
    out.append(f"GRANT SELECT ON {', '.join(t(n) for n in SERVICE_READS)} TO {service}")
    # runner: read the log, write its own tables
    out.append(f"GRANT SELECT ON {t('events')}, {t('streams')} TO {runner}")
    out.append(f"GRANT {READ_MODEL} ON {', '.join(t(n) for n in RUNNER_TABLES)} TO {runner}")
    out.append(f"GRANT USAGE ON SEQUENCE {t('dead_letters_id_seq')} TO {runner}")
    # read models
    for role, names in ((service, roles.service_tables), (runner, roles.runner_tables)):
        if names:
            out.append(f"GRANT {READ_MODEL} ON {', '.join(t(n) for n in names)} TO {role}")
    return out


def _own_partitions(events: str, migrator: str) -> str:
    """Partitions of ``events`` (attach and detach need the owner of both tables)."""
    return (
        "DO $$ DECLARE p regclass; BEGIN FOR p IN SELECT inhrelid::regclass FROM pg_inherits "
        f"WHERE inhparent = {_literal(events)}::regclass LOOP "
        f"EXECUTE format('ALTER TABLE %s OWNER TO %s', p, {_literal(migrator)}); "
        "END LOOP; END $$"
    )


def _literal(quoted_identifier: str) -> str:
    return "'" + quoted_identifier.replace("'", "''") + "'"


def grant_roles(
    connection: Connection, roles: CqrsRoles, *, schema: str | None = None
) -> list[str]:
    """Run ``grant_statements`` for the current schema (or ``schema``) on ``connection``,
    in its transaction; answer the statements run. Run it as the tables' owner.

    >>> # the roles must exist on the server (cluster-wide): tests/integration/test_roles.py
    >>> with engine.begin() as conn:  # doctest: +SKIP
    ...     grant_roles(conn, CqrsRoles(service="orders_app", runner="orders_runner"))
    """
    if schema is None:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    statements = grant_statements(
        roles, schema=str(schema), quote=lambda name: sqlnames.quote(connection, name)
    )
    for statement in statements:
        connection.execute(sqlnames.generated(statement))
    return statements
