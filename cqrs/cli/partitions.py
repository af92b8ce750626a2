"""Internal: ``cqrs partitions list|ensure|detach|archive``, over ``cqrs.store.partitions``."""

from __future__ import annotations

import argparse
from typing import Any

import attrs
from sqlalchemy import Engine

from cqrs.cli.common import add_common, emit, engine_from, settings_from, table
from cqrs.config import Settings
from cqrs.redact import printable
from cqrs.store import partitions


def list_partitions(engine: Engine, *, exact: bool = False) -> list[dict[str, Any]]:
    """Every partition of ``events`` (and detached ones still here) with sizes."""
    with engine.connect() as conn:
        return [attrs.asdict(p) for p in partitions.partition_stats(conn, exact=exact)]


def ensure_partitions(engine: Engine, settings: Settings) -> list[str]:
    """Create the partitions ``settings`` asks for; answer the names created."""
    with engine.begin() as conn:
        return partitions.ensure(conn, settings)


def detach_partition(
    engine: Engine, name: str, *, concurrently: bool = True, force: bool = False
) -> None:
    """Detach ``name`` (``CONCURRENTLY`` by default, so appends go on meanwhile)."""
    if concurrently:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            partitions.detach(conn, name, concurrently=True, force=force)
        return
    with engine.begin() as conn:
        partitions.detach(conn, name, force=force)


def archive_partition(
    engine: Engine,
    name: str,
    *,
    schema: str | None = partitions.ARCHIVE_SCHEMA,
    to_file: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Archive ``name`` into ``schema`` or a file; answer where it went."""
    with engine.begin() as conn:
        result = partitions.archive(conn, name, schema=schema, to_file=to_file, force=force)
    return attrs.asdict(result)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _cmd_list(args: argparse.Namespace) -> int:
    rows = list_partitions(engine_from(args), exact=args.exact)
    shown = table(
        ("partition", "state", "rows" if args.exact else "rows (estimate)", "size", "bounds"),
        (
            (p["name"], "attached" if p["attached"] else "DETACHED",
             "?" if p["rows"] is None else p["rows"], _size(p["bytes"]), p["bounds"] or "")
            for p in rows
        ),
        right={2, 3},
    )  # fmt: skip
    emit(args, rows, shown if rows else "no partitions")
    return 0


def _cmd_ensure(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.months_ahead is not None:
        settings = attrs.evolve(settings, months_ahead=args.months_ahead)
    created = ensure_partitions(engine_from(args), settings)
    shown = printable(", ".join(created)) or "nothing (all there)"
    emit(args, {"created": created}, f"created: {shown}")
    return 0


def _cmd_detach(args: argparse.Namespace) -> int:
    detach_partition(
        engine_from(args), args.name, concurrently=not args.no_concurrently, force=args.force
    )
    emit(args, {"detached": args.name}, f"detached {printable(args.name)}")
    return 0


def _cmd_archive(args: argparse.Namespace) -> int:
    result = archive_partition(
        engine_from(args),
        args.name,
        schema=None if args.to_file else args.schema,
        to_file=args.to_file,
        force=args.force,
    )
    emit(
        args,
        result,
        f"archived {printable(result['name'])} ({result['rows']} rows) to "
        f"{printable(result['destination'])}",
    )
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser("partitions", help="partitions of the events table")
    commands = group.add_subparsers(required=True)

    ls = commands.add_parser("list", help="partitions with row counts and sizes")
    ls.add_argument("--exact", action="store_true", help="count rows (slow) instead of estimates")
    add_common(ls)
    ls.set_defaults(func=_cmd_list)

    ensure = commands.add_parser("ensure", help="create this month's and the next ones")
    ensure.add_argument("--months-ahead", type=int, help="default: Settings.months_ahead (3)")
    add_common(ensure)
    ensure.set_defaults(func=_cmd_ensure)

    detach = commands.add_parser(
        "detach", help="detach an old monthly partition (CONCURRENTLY); hash ones never"
    )
    detach.add_argument("name", help="e.g. events_y2025m01")
    detach.add_argument(
        "--no-concurrently", action="store_true", help="detach in one short locking step"
    )
    detach.add_argument(
        "--force", action="store_true", help="even if streams not archived have events there"
    )
    add_common(detach)
    detach.set_defaults(func=_cmd_detach)

    archive = commands.add_parser("archive", help="move a partition to a schema or a file")
    archive.add_argument("name", help="e.g. events_y2025m01 (attached or detached)")
    where = archive.add_mutually_exclusive_group()
    where.add_argument("--schema", default=partitions.ARCHIVE_SCHEMA, help="default: cqrs_archive")
    where.add_argument("--to-file", help="export with COPY to this new file (.gz compresses)")
    archive.add_argument(
        "--force", action="store_true", help="even if streams not archived have events there"
    )
    add_common(archive)
    archive.set_defaults(func=_cmd_archive)
