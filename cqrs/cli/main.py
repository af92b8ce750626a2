"""Internal: the ``cqrs`` parser. Each command group lives in its own module
with a ``register(subparsers)`` function; the work is done by plain functions
there that Python callers can use directly."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from cqrs.errors import CqrsError

COMMAND_MODULES = (
    "cqrs.cli.streams",
    "cqrs.cli.partitions",
    "cqrs.cli.projections",
    "cqrs.cli.relay",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cqrs", description="Operate a cqrs event store on PostgreSQL."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CqrsError as exc:
        print(f"cqrs: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        print(
            f"cqrs: the database refused: {first}\n"
            "check --database-url / CQRS_DATABASE_URL, and that the schema is migrated "
            "(alembic upgrade heads)",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
