"""Internal: the ``cqrs`` parser. Each command group lives in its own module
with a ``register(subparsers)`` function; the work is done by plain functions
there that Python callers can use directly."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError, OperationalError

from cqrs._version import DISTRIBUTION, __version__
from cqrs.cli.common import Exit
from cqrs.errors import BrokerUnavailable, ConfigurationError, CqrsError

COMMAND_MODULES = (
    "cqrs.cli.streams",
    "cqrs.cli.partitions",
    "cqrs.cli.projections",
    "cqrs.cli.embedded",
    "cqrs.cli.explain",
    "cqrs.cli.relay",
    "cqrs.cli.roles",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cqrs", description="Operate a cqrs event store on PostgreSQL."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} ({DISTRIBUTION})"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``cqrs`` command; answer its exit code (``cqrs.cli.common.Exit``)."""
    args = build_parser().parse_args(argv)  # a usage error exits 2 here (argparse)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_pipe()
    except ConfigurationError as exc:
        print(f"cqrs: {exc}", file=sys.stderr)
        return Exit.USAGE
    except BrokerUnavailable as exc:
        print(f"cqrs: {exc}", file=sys.stderr)
        return Exit.UNREACHABLE
    except CqrsError as exc:
        print(f"cqrs: {exc}", file=sys.stderr)
        return Exit.RUNTIME
    except DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        if _cannot_connect(exc):
            print(
                f"cqrs: cannot connect to the database: {first}\n"
                "check --database-url / CQRS_DATABASE_URL and that PostgreSQL is running",
                file=sys.stderr,
            )
            return Exit.UNREACHABLE
        print(
            f"cqrs: the database refused: {first}\n"
            "check that the schema is migrated (alembic upgrade heads) and the arguments",
            file=sys.stderr,
        )
        return Exit.RUNTIME
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    return code


# SQLSTATE classes of a failed or lost connection: connection exception, invalid
# authorization, no such database, server shutting down or not accepting connections.
_CONNECT_STATES = ("08", "28", "3D", "57P")


def _cannot_connect(exc: DBAPIError) -> bool:
    if not isinstance(exc, OperationalError):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    return state is None or state.startswith(_CONNECT_STATES)


def _closed_pipe() -> int:
    """The reader went away (``cqrs events tail | head``): stop quietly. Point stdout at
    /dev/null so the interpreter's final flush does not print a second traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return Exit.PIPE


if __name__ == "__main__":
    sys.exit(main())
