"""Internal: the ``cqrs`` parser. Each command group lives in its own module
with a ``register(subparsers)`` function; the work is done by plain functions
there that Python callers can use directly."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy.exc import DBAPIError, OperationalError

from cqrs._version import DISTRIBUTION, __version__
from cqrs.cli.common import Exit
from cqrs.errors import BrokerUnavailable, ConfigurationError, CqrsError
from cqrs.redact import mask_url, printable

COMMAND_MODULES = (
    "cqrs.cli.streams",
    "cqrs.cli.partitions",
    "cqrs.cli.projections",
    "cqrs.cli.embedded",
    "cqrs.cli.explain",
    "cqrs.cli.relay",
    "cqrs.cli.alembic",
)


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors, which quote the arguments given, mask
    passwords and escape control characters too (sub-commands inherit the class)."""

    def error(self, message: str) -> NoReturn:
        super().error(printable(mask_url(message)))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cqrs", description="Operate a cqrs event store on PostgreSQL.")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} ({DISTRIBUTION})"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``cqrs`` command; answer its exit code (``cqrs.cli.common.Exit``).

    Whatever goes wrong is one line on stderr (passwords masked, control
    characters escaped) and an exit code, never a traceback.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    for arg in argv:
        if not _is_utf8(arg):  # undecodable bytes, surrogate-escaped by Python
            parser.error(f"argument '{printable(mask_url(arg))}' is not valid UTF-8")
    args = parser.parse_args(argv)  # a usage error exits 2 here (argparse)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_pipe()
    except ConfigurationError as exc:
        return _fail(exc, Exit.USAGE)
    except BrokerUnavailable as exc:
        return _fail(exc, Exit.UNREACHABLE)
    except CqrsError as exc:
        return _fail(exc, Exit.RUNTIME)
    except DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        if _cannot_connect(exc):
            return _fail(
                f"cannot connect to the database: {first}",
                Exit.UNREACHABLE,
                "check --database-url / CQRS_DATABASE_URL and that PostgreSQL is running",
            )
        return _fail(
            f"the database refused: {first}",
            Exit.RUNTIME,
            "check that the schema is migrated (alembic upgrade heads) and the arguments",
        )
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except OSError as exc:  # a file or directory the command was pointed at
        return _fail(f"{exc.strerror or type(exc).__name__}: {exc.filename or exc}", Exit.RUNTIME)
    except Exception as exc:  # a bug: still one line, with what to report
        if os.environ.get("CQRS_TRACEBACK"):
            raise
        return _fail(
            f"unexpected {type(exc).__name__}: {exc}",
            Exit.RUNTIME,
            "this is a bug in cqrs or in the code it imported; run again with "
            "CQRS_TRACEBACK=1 for the traceback",
        )
    return code


def _is_utf8(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fail(error: object, code: int, hint: str = "") -> int:
    """Print ``cqrs: <error>`` (one line) and ``hint`` on stderr; answer ``code``."""
    text = str(error).strip().splitlines() or [type(error).__name__]
    print(f"cqrs: {printable(mask_url(' '.join(text)))}", file=sys.stderr)
    if hint:
        print(hint, file=sys.stderr)
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
