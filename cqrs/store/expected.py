"""Public: what a writer expects of a stream's version, and what an append returns."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from cqrs import errors
from cqrs.config import Settings
from cqrs.events.model import Event, NewEvent, Position, RecordedEvent
from cqrs.store.validation import INT32_MAX, check_stream_id


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


def holds(expected: Expected, actual: int | None) -> bool:
    """Whether a stream at version ``actual`` (``None``: no stream) meets ``expected``.

    >>> holds(ANY, None), holds(NO_STREAM, None), holds(0, 3), holds(STREAM_EXISTS, 3)
    (True, True, False, True)
    """
    return (
        expected is ANY
        or (expected is STREAM_EXISTS and actual is not None)
        or ((expected is NO_STREAM or expected == 0) and actual is None)
        or (isinstance(expected, int) and expected == actual)
    )


def check(expected: object) -> Expected:
    """``expected`` if it is an expectation a store can test, else :class:`InvalidInput`.

    >>> check(3), check(ANY)
    (3, <ExpectedVersion.ANY: 'any'>)
    """
    if isinstance(expected, bool) or not isinstance(expected, (int, ExpectedVersion)):
        raise errors.InvalidInput(
            f"expected_version must be an int >= 0 or ANY, NO_STREAM, STREAM_EXISTS; "
            f"got {expected!r}"
        )
    if isinstance(expected, int) and not 0 <= expected <= INT32_MAX:
        raise errors.InvalidInput(
            f"expected_version must be an int from 0 to {INT32_MAX} or ANY, NO_STREAM, "
            f"STREAM_EXISTS; got {expected}"
        )
    return expected


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

    @classmethod
    def deferred(
        cls,
        stream_id: str,
        version: int,
        position: Position,
        appended: int,
        build: Callable[[], tuple[RecordedEvent[Event], ...]],
    ) -> AppendResult:
        """An ``AppendResult`` whose ``recorded`` is ``build()``, called on its first read.

        A batch append returns hundreds of results that most callers never
        look into; building their ``RecordedEvent`` objects was a sixth of its
        client work. Reading ``recorded`` (also through ``==``, ``repr``,
        ``attrs.asdict``, pickling) gives the tuple ``build`` returns, kept
        from then on, so nothing can tell the difference. Two threads reading
        it first at once may each build it (equal tuples).

        >>> r = AppendResult.deferred("s-1", 1, Position(5, 9), 1, lambda: ())
        >>> r == AppendResult("s-1", 1, Position(5, 9), 1), r.recorded
        (True, ())
        """
        result = cls(stream_id, version, position, appended)
        _RECORDED_SLOT.__set__(result, _Pending(build))
        return result


class _Pending:
    """A ``recorded`` tuple not built yet (``AppendResult.deferred``)."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[], tuple[RecordedEvent[Event], ...]]) -> None:
        self.build = build


class _BuiltOnRead:
    """``AppendResult.recorded``: the attrs slot, with a ``_Pending`` value built on read.

    It replaces the slot's descriptor on the class and delegates to it, so the
    generated ``__init__``, ``__eq__``, ``__repr__``, ``__hash__`` and the
    pickling methods (which all read and write the attribute by name) work as
    before and only ever see the tuple.
    """

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.slot.__get__(instance, owner)
        if type(value) is _Pending:
            value = value.build()
            self.slot.__set__(instance, value)
        return value

    def __set__(self, instance: object, value: Any) -> None:
        self.slot.__set__(instance, value)  # only object.__setattr__ gets here: frozen


_RECORDED_SLOT: Any = AppendResult.__dict__["recorded"]
setattr(AppendResult, "recorded", _BuiltOnRead(_RECORDED_SLOT))  # noqa: B010  # mypy: a field


@attrs.frozen
class StreamAppend:
    """One stream's part of :meth:`EventStore.append_many <cqrs.store.EventStore.append_many>`.

    The same arguments as ``append``, for one stream: its events, the version
    it expects, its type (default: the id's category) and metadata merged
    into each of its events (after the call's shared metadata).

    >>> StreamAppend("order-1", [], expected_version=3).expected_version
    3
    """

    stream_id: str
    events: Sequence[Event | NewEvent[Event]]
    expected_version: Expected = ANY
    stream_type: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


def check_appends(appends: object, caller: str, settings: Settings) -> list[StreamAppend]:
    """``appends`` as a list of :class:`StreamAppend`, each a usable stream id
    (:func:`cqrs.store.validation.check_stream_id`) given once, else ``InvalidInput``.

    >>> check_appends([StreamAppend("a-1", [])], "append_many", Settings())[0].stream_id
    'a-1'
    """
    if isinstance(appends, StreamAppend) or not isinstance(appends, Sequence):
        raise errors.InvalidInput(f"{caller} takes a list of StreamAppend; wrap it in [ ]")
    seen: set[object] = set()
    for item in appends:
        if not isinstance(item, StreamAppend):
            raise errors.InvalidInput(
                f"{caller} got {item!r}; pass cqrs.store.StreamAppend(stream_id, events)"
            )
        check_stream_id(item.stream_id, settings)
        if item.stream_id in seen:
            raise errors.InvalidInput(
                f"stream {item.stream_id!r} appears twice in one {caller}; "
                "put all its events in one StreamAppend"
            )
        seen.add(item.stream_id)
    return list(appends)
