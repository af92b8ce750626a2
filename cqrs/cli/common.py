"""Internal: what every CLI command shares: exit codes, the database option, output,
checkpoint tokens (progress displays: ``cqrs.cli.progress``)."""

from __future__ import annotations

import argparse
import enum
import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import attrs
from sqlalchemy import Engine, create_engine

from cqrs.config import Settings
from cqrs.events.model import Position
from cqrs.projections.sql import MAX_POSITION
from cqrs.redact import printable


class Exit(enum.IntEnum):
    """The ``cqrs`` command's exit codes (docs/guides/operations.md, "The command line")."""

    OK = 0
    RUNTIME = 1  # the toolkit or the database refused what the command asked
    USAGE = 2  # bad arguments or settings: the command did not start its work
    UNREACHABLE = 3  # cannot connect to the database (or the NATS server)
    PARKED = 4  # `projections run --once` finished but parked events in dead_letters
    INTERRUPTED = 130  # Ctrl-C
    PIPE = 141  # the reader closed the pipe (`| head`): 128 + SIGPIPE, as shells report it


def checkpoint_token(position: Position) -> str:
    """A checkpoint as text, the same in text and JSON output: ``xid:position``, or
    ``xid:end`` once the runner passed every event of transactions before ``xid``."""
    if position.global_position == MAX_POSITION:
        return f"{position.transaction_id}:end"
    return str(position)


def parse_checkpoint(token: str) -> Position:
    """Read ``xid:position`` or ``xid:end`` (what ``checkpoint_token`` writes)."""
    xid, _, pos = token.partition(":")
    return Position.parse(f"{xid}:{MAX_POSITION}" if pos == "end" else token)


def _seconds(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{printable(text)}' is not a number of seconds"
        ) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds {'>= 0' if zero else 'above 0'}, "
            f"got '{printable(text)}'"
        )
    return value


def seconds(text: str) -> float:
    """An argparse ``type``: a finite number of seconds above zero (``--poll``)."""
    return _seconds(text, zero=False)


def seconds_or_zero(text: str) -> float:
    """An argparse ``type``: a finite number of seconds, zero or more (``--min-age``)."""
    return _seconds(text, zero=True)


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--database-url`` (else ``CQRS_DATABASE_URL``) or ``--embedded DIR``, and ``--json``."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--database-url",
        help="PostgreSQL URL (default: $CQRS_DATABASE_URL)",
    )
    where.add_argument(
        "--embedded",
        metavar="DIR",
        help="use the embedded PostgreSQL with its data in DIR, started if needed "
        "(pip install 'sqlalchemy-cqrs[embedded]')",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def settings_from(args: argparse.Namespace) -> Settings:
    """``Settings.from_env()``, with ``--database-url`` or ``--embedded`` taking precedence."""
    settings = Settings.from_env()
    if getattr(args, "database_url", None):
        settings = attrs.evolve(settings, database_url=args.database_url)
    elif getattr(args, "embedded", None):
        from cqrs import embedded

        settings = attrs.evolve(settings, database_url=embedded.start(args.embedded))
    return settings


def engine_from(args: argparse.Namespace) -> Engine:
    from cqrs.errors import ConfigurationError

    url = settings_from(args).database_url
    if not url:
        raise ConfigurationError(
            "no database given; pass --database-url, set CQRS_DATABASE_URL, or use --embedded DIR"
        )
    return create_engine(url)


def emit(args: argparse.Namespace, data: Any, human: str, out: TextIO | None = None) -> None:
    """Print ``data`` as JSON with ``--json``, else the ``human`` text (control characters
    escaped but its own line breaks: put values in it through ``printable``, so a line
    break inside one is escaped too)."""
    out = out or sys.stdout
    if getattr(args, "json", False):
        out.write(json.dumps(data, default=str, indent=2) + "\n")
    else:
        out.write(printable(human.rstrip("\n"), keep="\n") + "\n")


def emit_line(args: argparse.Namespace, data: Any, human: str, out: TextIO | None = None) -> None:
    """One record of a stream: a JSON Lines line with ``--json``, else ``human``; flushed,
    so a follower sees it at once and a closed pipe is noticed at once."""
    out = out or sys.stdout
    if getattr(args, "json", False):
        out.write(json.dumps(data, default=str, separators=(",", ":")) + "\n")
    else:
        out.write(printable(human.rstrip("\n"), keep="\n") + "\n")
    out.flush()


def table(header: Sequence[str], rows: Iterable[Sequence[object]], right: set[int]) -> str:
    """Rows under a header row, columns as wide as their widest cell; the columns in
    ``right`` are right-aligned (numbers). The last column is not padded. Cells are
    shown through ``printable``: a control character in one is escaped."""
    cells = [list(header), *([("" if c is None else printable(c)) for c in r] for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        shown = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(shown).rstrip())
    return "\n".join(lines)
