"""Internal: ``cqrs streams show ID`` and ``cqrs events tail``.

Both show payloads as stored (no event classes needed). A row they cannot
read (its JSON does not parse here: a number of thousands of digits, nesting
too deep; metadata that is not an object) does not stop them: ``show`` lists
it as unreadable, ``tail`` prints a one-line warning on stderr and goes on
after it; both then exit 1 (``Exit.RUNTIME``) once done.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine

from cqrs.cli.common import Exit, add_common, emit, emit_line, engine_from, parse_checkpoint
from cqrs.errors import EventDecodeError, StreamNotFound
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


def _unreadable(err: EventDecodeError) -> dict[str, Any]:
    """A row that could not be read, as plain data: where it is and why."""
    return {
        "stream_id": err.stream_id,
        "version": err.version,
        "position": None if err.position is None else str(err.position),
        "event_type": err.event_type,
        "error": err.problem,
    }


def show_stream(engine: Engine, stream_id: str) -> dict[str, Any]:
    """The stream's row and its events, as plain data; an unreadable event is listed
    with an ``error`` instead of its data."""
    store = _raw_store()
    events: list[dict[str, Any]] = []
    with engine.connect() as conn:
        info = store.stream_info(conn, stream_id)
        if info is None:
            raise StreamNotFound(stream_id)
        start = 1
        while True:
            try:
                events += [
                    _as_dict(e) for e in store.read_stream(conn, stream_id, from_version=start)
                ]
                break
            except EventDecodeError as err:
                if err.version is None or err.version < start:
                    raise
                good = store.read_stream(
                    conn, stream_id, from_version=start, to_version=err.version - 1
                )
                events += [_as_dict(e) for e in good]
                events.append(_unreadable(err))
                start = err.version + 1
    return {
        "stream_id": info.stream_id,
        "stream_type": info.stream_type,
        "version": info.version,
        "created_at": info.created_at.isoformat(),
        "archived": info.archived,
        "events": events,
    }


BATCH = 500


def tail_events(
    engine: Engine, after: Position = START, *, follow: bool = True, poll: float = 0.5
) -> Iterator[dict[str, Any]]:
    """Yield stored events as dicts from ``after``, then follow the log live.

    A row that cannot be read is yielded as a dict with an ``error`` key (see
    ``_unreadable``) and the tail goes on after it.
    """
    store = _raw_store()
    limit = BATCH
    while True:
        try:
            with engine.connect() as conn:
                batch = store.read_all(conn, after=after, limit=limit)
        except EventDecodeError as err:
            if err.position is None:
                raise
            if limit > 1:  # the events before it are fine: read them one at a time
                limit = 1
                continue
            yield _unreadable(err)
            after, limit = err.position, BATCH
            continue
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
    for e in data["events"]:
        shown = f"UNREADABLE: {e['error']}" if "error" in e else e["data"]
        lines.append(f"  v{e['version']:<5} {printable(e['event_type']):<30} {printable(shown)}")
    emit(args, data, "\n".join(lines))
    return Exit.RUNTIME if any("error" in e for e in data["events"]) else Exit.OK


def _cmd_tail(args: argparse.Namespace) -> int:
    after = parse_checkpoint(args.after) if args.after else START
    skipped = 0
    for e in tail_events(engine_from(args), after, follow=not args.no_follow):
        if "error" in e:
            skipped += 1
            print(
                f"cqrs: warning: skipped the unreadable event at {e['position']} "
                f"(stream {e['stream_id']!r}, version {e['version']}, type {e['event_type']!r}): "
                f"{' '.join(str(e['error']).split())}",
                file=sys.stderr,
                flush=True,
            )
            continue
        emit_line(
            args, e, f"{e['position']:>14}  {printable(e['stream_id']):<24} "
            f"{printable(e['event_type']):<28} {printable(e['data'])}",
        )  # fmt: skip
    return Exit.RUNTIME if skipped else Exit.OK


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
