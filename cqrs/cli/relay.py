"""Internal: ``cqrs relay run|status``: the JetStream relay from the command line.

Relays are imported with ``--module package.module:attribute`` (a ``Relay``,
a list of them, or a function returning either); the broker is
``--nats-url`` or ``$CQRS_NATS_URL``. nats-py (the ``nats`` extra) is
imported only when a relay command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from cqrs.cli.common import add_common, emit, engine_from, seconds
from cqrs.cli.projections import load_projections
from cqrs.errors import BrokerError, ConfigurationError
from cqrs.projections.status import projection_status
from cqrs.redact import printable

if TYPE_CHECKING:
    from cqrs.relay.relay import Relay


def load_relays(spec: str) -> list[Relay]:
    """Import ``module:attribute`` and return the relays it names."""
    from cqrs.relay.relay import Relay

    found = load_projections(spec)
    if not all(isinstance(r, Relay) for r in found):
        raise ConfigurationError(
            f"'{printable(spec)}' names "
            f"{printable([r for r in found if not isinstance(r, Relay)])}, which are not "
            "Relay definitions; run projections with `cqrs projections run`"
        )
    return [r for r in found if isinstance(r, Relay)]


def nats_url_from(args: argparse.Namespace) -> str:
    url = getattr(args, "nats_url", None) or os.environ.get("CQRS_NATS_URL")
    if not url:
        raise ConfigurationError("no NATS server given; pass --nats-url or set CQRS_NATS_URL")
    return str(url)


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        from cqrs.relay.runner import RelayRunner
    except ImportError as exc:  # pragma: no cover - extra missing
        raise ConfigurationError(
            f"the relay needs nats-py: pip install 'cqrs[nats]' ({exc})"
        ) from exc
    if "." not in sys.path:
        sys.path.insert(0, ".")
    relays = load_relays(args.module)
    runner = RelayRunner(engine_from(args), relays, nats_url=nats_url_from(args),
                         poll_interval=args.poll)  # fmt: skip
    if args.once:
        try:
            n = runner.run_until_caught_up(timeout=args.max_wait)
        finally:
            runner.close()
        published = sum(r.published for r in relays)
        emit(args, {"events": n, "published": published},
             f"published {published} messages ({n} events handled)")  # fmt: skip
        return 0
    stop = threading.Event()
    runner.stop = stop
    runner.stop_on_signals()
    names = printable([r.name for r in relays])
    print(f"cqrs: relaying {names} (SIGTERM/Ctrl-C stops)", file=sys.stderr)
    runner.run_forever(stop)
    return 0


def relay_status(args: argparse.Namespace) -> dict[str, Any]:
    """Each relay shard's checkpoint, lag and last error; each stream's duplicate window."""
    from cqrs.relay.publisher import JetStreamPublisher

    relays = load_relays(args.module)
    names = {r.name for r in relays}
    shards = [s for s in projection_status(engine_from(args)) if s.projection in names]
    streams: dict[str, Any] = {}
    wanted = sorted({r.stream for r in relays if r.stream})
    if wanted:
        publisher = JetStreamPublisher(nats_url_from(args), name="cqrs-status")
        try:
            for stream in wanted:
                try:
                    streams[stream] = {"duplicate_window_s": publisher.duplicate_window(stream)}
                except BrokerError as exc:
                    streams[stream] = {"error": str(exc)}
        finally:
            publisher.close()
    return {
        "shards": [
            {"relay": s.projection, "shard": s.shard, "checkpoint": str(s.checkpoint),
             "behind": s.behind, "last_error": s.last_error, "parked": s.parked,
             "owner": s.owner, "updated_at": s.updated_at}
            for s in shards
        ],
        "streams": streams,
    }  # fmt: skip


def _cmd_status(args: argparse.Namespace) -> int:
    if "." not in sys.path:
        sys.path.insert(0, ".")
    data = relay_status(args)
    lines = [f"{'relay':<24} {'shard':>5} {'behind':>8} {'parked':>6}  last error"]
    for s in data["shards"]:
        lines.append(f"{printable(s['relay']):<24} {s['shard']:>5} {s['behind']:>8} "
                     f"{s['parked']:>6}  {printable((s['last_error'] or '')[:80])}")  # fmt: skip
    for name, info in data["streams"].items():
        shown = info.get("error") or f"duplicate window {info['duplicate_window_s']:.0f}s"
        lines.append(f"stream {printable(name)}: {printable(shown)}")
    emit(args, data, "\n".join(lines))
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser("relay", help="publish selected events to NATS JetStream")
    commands = group.add_subparsers(required=True, metavar="ACTION")

    run = commands.add_parser("run", help="catch up, then follow the log (SIGTERM stops)")
    run.add_argument("--module", required=True, help="package.module:attribute of relays")
    run.add_argument("--nats-url", help="NATS server (default: $CQRS_NATS_URL)")
    run.add_argument("--poll", type=seconds, default=0.5, help="polling interval in seconds")
    run.add_argument("--once", action="store_true", help="stop when caught up")
    run.add_argument("--max-wait", type=seconds, default=60.0,
                     help="with --once: give up after this long without the broker")  # fmt: skip
    add_common(run)
    run.set_defaults(func=_cmd_run)

    status = commands.add_parser("status", help="relay lag, last error, dedupe window")
    status.add_argument("--module", required=True, help="package.module:attribute of relays")
    status.add_argument("--nats-url", help="NATS server (default: $CQRS_NATS_URL)")
    add_common(status)
    status.set_defaults(func=_cmd_status)
