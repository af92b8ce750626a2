"""Public: what a writer expects of a stream's version, and what an append returns."""

from __future__ import annotations

import enum

import attrs

from cqrs.events.model import Event, Position, RecordedEvent


class ExpectedVersion(enum.Enum):
    """Expectations other than an exact version number.

    ``ANY``: no check. ``NO_STREAM``: the stream must not exist yet (same as
    ``0``). ``STREAM_EXISTS``: the stream must exist, at any version.
    """

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"

    def __str__(self) -> str:
        return self.value


ANY = ExpectedVersion.ANY
NO_STREAM = ExpectedVersion.NO_STREAM
STREAM_EXISTS = ExpectedVersion.STREAM_EXISTS

Expected = ExpectedVersion | int


@attrs.frozen
class AppendResult:
    """The outcome of ``EventStore.append``.

    ``version`` is the stream's version after the append; ``position`` the log
    position of its last event, a token for read-your-writes; ``appended`` the
    number of events written (0 when the call was an idempotent re-send);
    ``recorded`` the events as the log now holds them, in version order (what
    inline projections are fed; empty for a re-send).
    """

    stream_id: str
    version: int
    position: Position
    appended: int
    recorded: tuple[RecordedEvent[Event], ...] = ()
