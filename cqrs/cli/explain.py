"""Internal: ``cqrs explain CODE``, the section of docs/errors.md an error code names."""

from __future__ import annotations

import argparse
from typing import Any

from cqrs.cli.common import emit
from cqrs.docs import docs_path, error_codes, error_section


def _cmd_explain(args: argparse.Namespace) -> int:
    if args.code is None:
        codes = error_codes()
        emit(
            args,
            {"codes": codes, "docs": str(docs_path())},
            "\n".join(codes) + f"\n\nthe installed documentation: {docs_path()}",
        )
        return 0
    section = error_section(args.code)
    emit(args, {"code": args.code, "text": section}, section)
    return 0


def register(sub: Any) -> None:
    explain = sub.add_parser("explain", help="what an error code means and what to do")
    explain.add_argument("code", nargs="?", help="e.g. cqrs-concurrency (none: list the codes)")
    explain.add_argument("--json", action="store_true", help="print JSON for scripts")
    explain.set_defaults(func=_cmd_explain)
