"""Internal: ``cqrs embedded start|url|stop DIR``, over ``cqrs.embedded``."""

from __future__ import annotations

import argparse
from typing import Any

from cqrs import embedded
from cqrs.cli.common import emit
from cqrs.redact import printable


def _cmd_start(args: argparse.Namespace) -> int:
    url = embedded.start(args.data_dir, keep_running=True)
    emit(args, {"data_dir": args.data_dir, "url": url}, url)
    return 0


def _cmd_url(args: argparse.Namespace) -> int:
    url = embedded.running_url(args.data_dir)
    if url is None:
        emit(
            args,
            {"data_dir": args.data_dir, "url": None},
            f"no server runs at {printable(args.data_dir)}",
        )
        return 1
    emit(args, {"data_dir": args.data_dir, "url": url}, url)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    stopped = embedded.stop(args.data_dir)
    emit(
        args,
        {"data_dir": args.data_dir, "stopped": stopped},
        f"stopped the server at {printable(args.data_dir)}"
        if stopped
        else f"no server ran at {printable(args.data_dir)}",
    )
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser(
        "embedded", help="a PostgreSQL 16 from the pgserver package (the 'embedded' extra)"
    )
    commands = group.add_subparsers(required=True, metavar="ACTION")
    for name, func, text in (
        ("start", _cmd_start, "start or reuse the server at DIR, print its URL; it keeps running"),
        ("url", _cmd_url, "print the URL of the server running at DIR (exit 1: none runs)"),
        ("stop", _cmd_stop, "stop the server running at DIR"),
    ):  # fmt: skip
        command = commands.add_parser(name, help=text)
        command.add_argument("data_dir", metavar="DIR", help="its data directory")
        command.add_argument("--json", action="store_true", help="print JSON for scripts")
        command.set_defaults(func=func)
