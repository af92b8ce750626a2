"""Internal: ``cqrs alembic init DIR`` and ``cqrs alembic wire``, over
``cqrs.migrations.wiring`` (a service's Alembic environment set up for the toolkit)."""

from __future__ import annotations

import argparse
from typing import Any

from cqrs.cli.common import emit
from cqrs.migrations import wiring


def _report(args: argparse.Namespace, result: wiring.WireResult) -> int:
    if result.changes:
        human = "\n".join(
            [f"wired {result.ini} and {result.env} (branch {result.branch}):"]
            + [f"  {line}" for line in result.changes]
            + [
                "next: point sqlalchemy.url at your database, then `alembic upgrade heads`; "
                f"new revisions go on branch {result.branch}"
            ]
        )
    else:
        human = f"{result.ini} and {result.env} are wired already (branch {result.branch})"
    data = {
        "ini": str(result.ini),
        "env": str(result.env),
        "branch": result.branch,
        "changes": list(result.changes),
    }
    emit(args, data, human)
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    result = wiring.init(
        args.directory,
        ini=args.ini,
        template=args.template,
        branch=args.branch,
        models=args.models,
    )
    return _report(args, result)


def _cmd_wire(args: argparse.Namespace) -> int:
    return _report(args, wiring.wire(args.ini, branch=args.branch, models=args.models))


def register(sub: Any) -> None:
    group = sub.add_parser(
        "alembic", help="set your service's Alembic environment up for the toolkit's branch"
    )
    commands = group.add_subparsers(required=True, metavar="ACTION")
    init = commands.add_parser(
        "init", help="`alembic init DIR`, then wire it (the same as `wire` below)"
    )
    init.add_argument("directory", metavar="DIR", help="the environment's folder, e.g. alembic")
    init.add_argument(
        "--template", default="generic", help="the `alembic init` template (default generic)"
    )
    init.set_defaults(func=_cmd_init)
    wire = commands.add_parser(
        "wire",
        help="patch the alembic.ini and env.py `alembic init` wrote (again: no change)",
    )
    wire.set_defaults(func=_cmd_wire)
    for command in (init, wire):
        command.add_argument(
            "--ini", default="alembic.ini", help="the Alembic ini file (default alembic.ini)"
        )
        command.add_argument(
            "--branch",
            help="your revisions' branch label (default: cqrs_branch in the ini, else the "
            "folder's name)",
        )
        command.add_argument(
            "--models", metavar="MODULE:ATTR", help="your declarative base, e.g. shop.models:Base"
        )
        command.add_argument("--json", action="store_true", help="print JSON for scripts")
