"""Internal: ``cqrs streams show ID`` and ``cqrs events tail``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from sqlalchemy import Engine

from cqrs.cli.common import add_common, emit, emit_line, engine_from, parse_checkpoint
from cqrs.errors import StreamNotFound
from cqrs.events.codec import EventCodec
from cqrs.events.model import START, Position, RecordedEvent
from cqrs.events.registry import EventRegistry
from cqrs.redact import printable
from cqrs.store.event_store import EventStore


class _StoredPayloads(EventCodec):
    """The CLI shows payloads as stored: it needs no event classes."""

    def decode(self, name: str, schema_version: int, data: Any, **_: Any) -> Any:
        return data


def _raw_store() -> EventStore:
    return EventStore(codec=_StoredPayloads(EventRegistry()))


def _as_dict(e: RecordedEvent[Any]) -> dict[str, Any]:
    return {
        "stream_id": e.stream_id,
        "version": e.version,
        "position": str(e.position),
        "event_type": e.event_type,
        "schema_version": e.schema_version,
        "event_id": str(e.event_id),
        "recorded_at": e.recorded_at.isoformat(),
        "data": e.event,
        "metadata": dict(e.metadata),
    }


def show_stream(engine: Engine, stream_id: str) -> dict[str, Any]:
    """The stream's row and its events, as plain data."""
    store = _raw_store()
    with engine.connect() as conn:
        info = store.stream_info(conn, stream_id)
        if info is None:
            raise StreamNotFound(stream_id)
        events = store.read_stream(conn, stream_id)
    return {
        "stream_id": info.stream_id,
        "stream_type": info.stream_type,
        "version": info.version,
        "created_at": info.created_at.isoformat(),
        "archived": info.archived,
        "events": [_as_dict(e) for e in events],
    }


def tail_events(
    engine: Engine, after: Position = START, *, follow: bool = True, poll: float = 0.5
) -> Any:
    """Yield stored events as dicts from ``after``, then follow the log live."""
    store = _raw_store()
    while True:
        with engine.connect() as conn:
            batch = store.read_all(conn, after=after, limit=500)
        for e in batch:
            after = e.position
            yield _as_dict(e)
        if not batch:
            if not follow:
                return
            time.sleep(poll)


def _cmd_show(args: argparse.Namespace) -> int:
    data = show_stream(engine_from(args), args.stream_id)
    lines = [
        f"{printable(data['stream_id'])}  type={printable(data['stream_type'])}  "
        f"version={data['version']}  created={data['created_at']}  archived={data['archived']}"
    ]
    lines += [
        f"  v{e['version']:<5} {printable(e['event_type']):<30} {printable(e['data'])}"
        for e in data["events"]
    ]
    emit(args, data, "\n".join(lines))
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    after = parse_checkpoint(args.after) if args.after else START
    for e in tail_events(engine_from(args), after, follow=not args.no_follow):
        emit_line(
            args, e, f"{e['position']:>14}  {printable(e['stream_id']):<24} "
            f"{printable(e['event_type']):<28} {printable(e['data'])}",
        )  # fmt: skip
    return 0


def register(sub: Any) -> None:
    streams = sub.add_parser("streams", help="inspect streams").add_subparsers(required=True)
    show = streams.add_parser("show", help="a stream's row and events")
    show.add_argument("stream_id")
    add_common(show)
    show.set_defaults(func=_cmd_show)

    events = sub.add_parser("events", help="read the log").add_subparsers(required=True)
    tail = events.add_parser(
        "tail", help="print events as they commit (Ctrl-C stops); --json: one per line"
    )
    tail.add_argument(
        "--after",
        help="a position (xid:position) or checkpoint (xid:end) to start after "
        "(default: the start)",
    )
    tail.add_argument("--no-follow", action="store_true", help="stop at the end of the log")
    add_common(tail)
    tail.set_defaults(func=_cmd_tail)
