"""Internal: what every CLI command shares: the database option, output, progress."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

import attrs
from sqlalchemy import Engine, create_engine

from cqrs.config import Settings

T = TypeVar("T")


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
    """Print ``data`` as JSON with ``--json``, else the ``human`` text."""
    out = out or sys.stdout
    if getattr(args, "json", False):
        out.write(json.dumps(data, default=str, indent=2) + "\n")
    else:
        out.write(human.rstrip("\n") + "\n")


def progress(
    items: Iterable[T], total: int | None, label: str, out: TextIO | None = None
) -> Iterator[T]:
    """Yield ``items`` while drawing a one-line progress bar on a terminal."""
    out = out or sys.stderr
    show = out.isatty()
    for done, item in enumerate(items, start=1):
        yield item
        if show and (done % 50 == 0 or done == total):
            if total:
                filled = int(30 * done / total)
                out.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
            else:
                out.write(f"\r{label} {done}")
            out.flush()
    if show:
        out.write("\n")
