"""Internal: ``cqrs projections run|status|rebuild|dead-letters list|retry|skip``.

User projections are imported with ``--module package.module:attribute``,
where the attribute is a ``Projection``, a list of them, or a function
returning either.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import threading
from collections.abc import Sequence
from typing import Any

import attrs

from cqrs.cli.common import (
    Exit,
    add_common,
    checkpoint_token,
    emit,
    engine_from,
    seconds,
    seconds_or_zero,
)
from cqrs.cli.progress import Progress
from cqrs.errors import ConfigurationError
from cqrs.projections.dead_letters import (
    list_dead_letters,
    retry_dead_letters,
    skip_dead_letters,
)
from cqrs.projections.declarative import Projection
from cqrs.projections.rebuild import rebuild
from cqrs.projections.runner import ProjectionRunner
from cqrs.projections.status import horizon_holder, projection_status
from cqrs.redact import printable


def load_projections(spec: str) -> list[Projection]:
    """Import ``module:attribute`` and return the projections it names.

    Anything that goes wrong (no such module, a module that raises or does not
    compile, an attribute that is not projections) is a ``ConfigurationError``.
    """
    value = _import_attribute(spec)
    found = [value] if isinstance(value, Projection) else _as_list(value)
    if not found or not all(isinstance(p, Projection) for p in found):
        raise ConfigurationError(
            f"'{printable(spec)}' does not name a Projection or a list of them; "
            "point --module at module:attribute"
        )
    return found


def _import_attribute(spec: str) -> Any:
    """The value ``module:attribute`` names (``module`` alone: its ``projections``),
    called when it is a function."""
    module_name, _, attribute = spec.partition(":")
    shown = printable(module_name)
    if not module_name:
        raise ConfigurationError(
            f"--module '{printable(spec)}' names no module; pass --module package.module:attribute"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import '{shown}' ({printable(exc)}); pass --module "
            "package.module:attribute importable from the current directory"
        ) from exc
    except SyntaxError as exc:
        raise ConfigurationError(
            f"'{shown}' does not compile: {printable(exc.msg)} "
            f"({printable(exc.filename)}, line {exc.lineno}); fix the module"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(
            f"importing '{shown}' raised {type(exc).__name__}: {printable(exc)}; "
            "fix the module (it runs on import)"
        ) from exc
    value: Any = getattr(module, attribute or "projections", None)
    if callable(value) and not isinstance(value, Projection):
        try:
            value = value()
        except Exception as exc:
            raise ConfigurationError(
                f"calling '{printable(spec)}' raised {type(exc).__name__}: {printable(exc)}; "
                "it should return the definitions"
            ) from exc
    return value


def _as_list(value: object) -> list[Any]:
    if value is None or isinstance(value, (str, bytes)):
        return []
    try:
        return list(value)  # type: ignore[call-overload, no-any-return]
    except TypeError:
        return []


def _pick(projections: Sequence[Projection], name: str) -> Projection:
    for p in projections:
        if p.name == name:
            return p
    raise ConfigurationError(
        f"no projection named '{printable(name)}' in the module; "
        f"it has {printable([p.name for p in projections])}"
    )


def _cmd_run(args: argparse.Namespace) -> int:
    if "." not in sys.path:
        sys.path.insert(0, ".")
    projections = load_projections(args.module)
    runner = ProjectionRunner(
        engine_from(args), projections, poll_interval=args.poll, durable=not args.no_durable
    )
    if args.once:
        engine = runner.engine
        names = {p.name for p in projections}
        before = {d.id for d in list_dead_letters(engine) if d.projection in names}
        n = runner.run_until_caught_up()
        runner.close()
        parked = [
            d for d in list_dead_letters(engine) if d.projection in names and d.id not in before
        ]
        data = {"events": n, "parked": len(parked), "dead_letters": [d.id for d in parked]}
        text = f"applied {n} events"
        if parked:
            streams = sorted({d.stream_id for d in parked})
            text += (
                f"; parked {len(parked)} events of {len(streams)} streams in dead_letters "
                f"({', '.join(map(printable, streams[:5]))}{', ...' if len(streams) > 5 else ''}): "
                "see `cqrs projections dead-letters list`, then retry or skip them"
            )
        emit(args, data, text)
        return Exit.PARKED if parked else Exit.OK
    stop = threading.Event()
    runner.stop = stop
    runner.stop_on_signals()
    running = printable([p.name for p in projections])
    print(f"cqrs: running {running} (SIGTERM/Ctrl-C stops)", file=sys.stderr)
    runner.run_forever(stop)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    engine = engine_from(args)
    shards = projection_status(engine)
    holder = horizon_holder(engine, min_age=args.min_age)
    data: dict[str, Any] = {
        "shards": [
            {
                "projection": s.projection, "shard": s.shard,
                "checkpoint": checkpoint_token(s.checkpoint),
                "behind": s.behind, "last_error": s.last_error, "parked": s.parked,
                "owner": s.owner, "updated_at": s.updated_at,
            }
            for s in shards
        ],
        "horizon_holder": None if holder is None else attrs.asdict(holder),
    }  # fmt: skip
    lines = [
        f"{'projection':<28} {'shard':>5} {'checkpoint':>22} {'behind':>8} {'parked':>6}  error"
    ]
    for s in shards:
        lines.append(
            f"{printable(s.projection):<28} {s.shard:>5} {checkpoint_token(s.checkpoint):>22} "
            f"{s.behind:>8} {s.parked:>6}  {printable((s.last_error or '')[:60])}"
        )
    if holder is not None:
        end = "COMMIT PREPARED or ROLLBACK PREPARED it" if holder.gid else "end that transaction"
        lines.append(
            f"read horizon held back by {printable(holder.describe())}; {end}, "
            "or set idle_in_transaction_session_timeout"
        )
    emit(args, data, "\n".join(lines))
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    if "." not in sys.path:
        sys.path.insert(0, ".")
    projection = _pick(load_projections(args.module), args.name)

    engine = engine_from(args)
    with Progress(f"rebuild {projection.name}", unit="events", enabled=not args.json) as bar:
        result = rebuild(engine, projection, progress=bar.update_to)
    emit(
        args,
        {"projection": result.projection, "events": result.events,
         "checkpoint": checkpoint_token(result.checkpoint), "tables": list(result.tables)},
        f"rebuilt {printable(result.projection)} from {result.events} events; swapped in "
        f"{printable(', '.join(result.tables))}",
    )  # fmt: skip
    return 0


def _cmd_dl_list(args: argparse.Namespace) -> int:
    letters = list_dead_letters(engine_from(args), args.projection, stream_id=args.stream)
    data = [
        {"id": d.id, "projection": d.projection, "shard": d.shard, "stream_id": d.stream_id,
         "version": d.version, "event_type": d.event_type, "position": str(d.position),
         "error": d.error, "attempts": d.attempts, "parked_at": d.parked_at}
        for d in letters
    ]  # fmt: skip
    lines = [
        f"{d.id:>6} {printable(d.projection):<24} {printable(d.stream_id):<24} v{d.version:<5} "
        f"{printable(d.event_type):<24} {printable(d.error[:60])}"
        for d in letters
    ] or ["no parked events"]
    emit(args, data, "\n".join(lines))
    return 0


def _cmd_dl_retry(args: argparse.Namespace) -> int:
    if "." not in sys.path:
        sys.path.insert(0, ".")
    projection = _pick(load_projections(args.module), args.projection)
    if not args.stream and not args.ids:
        raise ConfigurationError("say what to retry: --stream STREAM_ID or dead letter ids")
    n = retry_dead_letters(engine_from(args), projection, stream_id=args.stream, ids=args.ids)
    emit(args, {"applied": n}, f"applied {n} parked events")
    return 0


def _cmd_dl_skip(args: argparse.Namespace) -> int:
    n = skip_dead_letters(engine_from(args), args.projection, args.ids)
    emit(args, {"skipped": n}, f"skipped {n} parked events")
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser("projections", help="run and operate projections")
    commands = group.add_subparsers(required=True, metavar="ACTION")

    run = commands.add_parser("run", help="catch up, then follow the log (SIGTERM stops)")
    run.add_argument("--module", required=True, help="package.module:attribute of projections")
    run.add_argument("--poll", type=seconds, default=0.5, help="polling interval in seconds")
    run.add_argument(
        "--once", action="store_true",
        help="stop when caught up (exit 4 when events were parked on the way)",
    )  # fmt: skip
    run.add_argument(
        "--no-durable", action="store_true",
        help="commit read-model batches with synchronous_commit=off (lower latency; process "
        "managers stay durable; see the guide)",
    )  # fmt: skip
    add_common(run)
    run.set_defaults(func=_cmd_run)

    status = commands.add_parser("status", help="checkpoints, lag, errors, horizon holder")
    status.add_argument(
        "--min-age", type=seconds_or_zero, default=1.0,
        help="report a horizon holder whose transaction is older than this (seconds)",
    )  # fmt: skip
    add_common(status)
    status.set_defaults(func=_cmd_status)

    rb = commands.add_parser("rebuild", help="rebuild into shadow tables and swap")
    rb.add_argument("name")
    rb.add_argument("--module", required=True, help="package.module:attribute of projections")
    add_common(rb)
    rb.set_defaults(func=_cmd_rebuild)

    dl = commands.add_parser("dead-letters", help="parked events").add_subparsers(
        required=True, metavar="ACTION"
    )
    ls = dl.add_parser("list", help="list parked events")
    ls.add_argument("--projection")
    ls.add_argument("--stream")
    add_common(ls)
    ls.set_defaults(func=_cmd_dl_list)

    retry = dl.add_parser("retry", help="apply a stream's parked events again")
    retry.add_argument("ids", nargs="*", type=int, help="dead letter ids (their streams retry)")
    retry.add_argument("--projection", required=True)
    retry.add_argument("--stream")
    retry.add_argument("--module", required=True, help="package.module:attribute of projections")
    add_common(retry)
    retry.set_defaults(func=_cmd_dl_retry)

    skip = dl.add_parser("skip", help="drop parked events without applying them")
    skip.add_argument("ids", nargs="+", type=int)
    skip.add_argument("--projection", required=True)
    add_common(skip)
    skip.set_defaults(func=_cmd_dl_skip)
