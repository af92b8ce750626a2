"""Internal: ``cqrs roles sql|grant``, over ``cqrs.roles``: the migrator / service /
runner split as SQL for a DBA, or run against the database as the tables' owner."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import Engine

from cqrs.cli.common import add_common, emit, engine_from
from cqrs.roles import CqrsRoles, grant_roles, grant_statements


def roles_sql(roles: CqrsRoles, *, schema: str = "public") -> str:
    """The grants as one SQL script (statements ending in ``;``)."""
    return "".join(f"{statement};\n" for statement in grant_statements(roles, schema=schema))


def grant(engine: Engine, roles: CqrsRoles, *, schema: str | None = None) -> list[str]:
    """Run the grants in one transaction on ``engine`` (as the owner); the statements run."""
    with engine.begin() as conn:
        return grant_roles(conn, roles, schema=schema)


def _roles(args: argparse.Namespace) -> CqrsRoles:
    return CqrsRoles(
        service=args.service,
        runner=args.runner,
        migrator=args.migrator,
        service_tables=args.service_table or (),
        runner_tables=args.runner_table or (),
        create=args.create,
    )


def _cmd_sql(args: argparse.Namespace) -> int:
    script = roles_sql(_roles(args), schema=args.schema or "public")
    emit(args, {"sql": script.splitlines()}, script)
    return 0


def _cmd_grant(args: argparse.Namespace) -> int:
    done = grant(engine_from(args), _roles(args), schema=args.schema)
    emit(args, {"granted": done}, f"ran {len(done)} statements; see `cqrs roles sql` for them")
    return 0


def _role_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, help="the role that appends and reads")
    parser.add_argument("--runner", required=True, help="the projection runner's role")
    parser.add_argument(
        "--migrator", help="make this role the owner of the toolkit's tables (default: leave)"
    )
    parser.add_argument(
        "--service-table", action="append", metavar="TABLE", help="an inline read model (repeat)"
    )
    parser.add_argument(
        "--runner-table", action="append", metavar="TABLE", help="a runner's read model (repeat)"
    )
    parser.add_argument(
        "--create", action="store_true", help="create missing roles (NOLOGIN; needs CREATEROLE)"
    )


def register(sub: Any) -> None:
    group = sub.add_parser("roles", help="the migrator / service / runner roles (security.md)")
    commands = group.add_subparsers(required=True)

    sql = commands.add_parser("sql", help="print the SQL that grants the roles (no database)")
    _role_arguments(sql)
    sql.add_argument("--schema", help="where the toolkit's tables live (default: public)")
    sql.add_argument("--json", action="store_true", help="print JSON for scripts")
    sql.set_defaults(func=_cmd_sql)

    run = commands.add_parser("grant", help="run those grants on the database, as the owner")
    _role_arguments(run)
    run.add_argument("--schema", help="default: the connection's current schema")
    add_common(run)
    run.set_defaults(func=_cmd_grant)
