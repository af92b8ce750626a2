"""Internal: every input rule of the event log, command bus and repositories, once.

Pure functions: they look at arguments and ``Settings`` and raise a
:class:`~cqrs.errors.InvalidInput` subclass, before anything is sent to the
database, so a bad argument never aborts the caller's transaction (its own
rows written earlier in it still commit). ``EventStore``, the in-memory store,
``Repository`` and ``CommandBus`` all call these, so the rules exist once.

    >>> from cqrs.config import Settings
    >>> check_command_id("cmd-1", Settings())
    'cmd-1'
    >>> check_command_id("\\u200b", Settings())
    Traceback (most recent call last):
    ...
    cqrs.errors.InvalidCommandId: invalid command id '\\u200b': is blank or invisible; ...

Names and ids (stream ids, event and stream types, aggregate and command ids)
must be ``str``, within their length limit in characters and
:data:`INDEX_SAFE_BYTES` in UTF-8 (PostgreSQL indexes them, and a btree entry
holds at most 2704 bytes), free of control characters (NUL included) and lone
surrogates, and not made only of blanks and invisible characters.
"""

from __future__ import annotations

import operator
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import attrs

from cqrs import errors
from cqrs.config import Settings
from cqrs.events.model import Event, NewEvent, Position

INT32_MAX = 2**31 - 1
"""The largest stream version (``streams.version`` and ``events.version`` are ``integer``)."""

INDEX_SAFE_BYTES = 2000
"""The most UTF-8 bytes an indexed name or id may take, whatever the length settings say."""

_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"})
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")  # fillers, braille blank
_LEAVES = frozenset(
    {str, int, float, bool, type(None), Decimal, uuid.UUID, datetime, date, time, bytes}
)

# -- names and ids --------------------------------------------------------------


def name_problem(value: object, limit: int) -> str | None:
    """Why ``value`` cannot be a name or id of at most ``limit`` characters, else ``None``.

    >>> name_problem("order-1", 200) is None
    True
    >>> name_problem("a\\x00b", 200)
    'contains a NUL character'
    """
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a str"
    if not value:
        return "is empty"
    if len(value) > limit:
        return f"is {len(value)} characters, over {limit}"
    if value.isascii():
        if value.isprintable():
            return "is blank" if value.isspace() else None
        if "\x00" in value:
            return "contains a NUL character"
        return "contains a control character"
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:
        return (
            f"contains {exc.object[exc.start : exc.end]!r}, a lone surrogate that is not "
            "UTF-8 text (decode the input that produced it properly)"
        )
    if size > INDEX_SAFE_BYTES:
        return f"is {size} bytes in UTF-8, over {INDEX_SAFE_BYTES}"
    visible = False
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cc":
            return "contains a NUL character" if ch == "\x00" else "contains a control character"
        if not visible and category not in _INVISIBLE_CATEGORIES:
            visible = ch not in _INVISIBLE_LETTERS
    return None if visible else "is blank or invisible"


def sendable_problem(value: object, limit: int) -> str | None:
    """Why ``value`` cannot even be looked up (not a str, NUL, lone surrogate, too long).

    Reads use this laxer rule, so a stream written before a rule was added
    stays readable.
    """
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a str"
    if len(value) > limit:
        return f"is {len(value)} characters, over {limit}"
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return f"contains {exc.object[exc.start : exc.end]!r}, a lone surrogate"
    return None


def check_stream_id(stream_id: object, settings: Settings) -> str:
    """``stream_id`` if it can name a new stream; else :class:`~cqrs.errors.InvalidStreamId`."""
    return _stream_id(stream_id, name_problem(stream_id, settings.max_id_length))


def check_stream_id_to_read(stream_id: object, settings: Settings) -> str:
    """``stream_id`` if it can be looked up; else :class:`~cqrs.errors.InvalidStreamId`."""
    return _stream_id(stream_id, sendable_problem(stream_id, settings.max_id_length))


def _stream_id(stream_id: object, problem: str | None) -> str:
    if problem is not None:
        shown = stream_id
        if isinstance(stream_id, str) and len(stream_id) > 60:
            shown = f"{stream_id[:40]}..."
        raise errors.InvalidStreamId(shown, problem)
    assert isinstance(stream_id, str)
    return stream_id


_checked_names: set[tuple[str, int]] = set()


def check_type_name(kind: str, name: object, settings: Settings) -> str:
    """``name`` if it can be an event or stream type; else :class:`~cqrs.errors.InvalidTypeName`.

    ``kind`` says which (``"event type"``, ``"stream type"``). Names that
    passed are remembered, so the check costs a set lookup per append.
    """
    limit = settings.max_type_length
    if isinstance(name, str) and (name, limit) in _checked_names:
        return name
    problem = name_problem(name, limit)
    if problem is not None:
        raise errors.InvalidTypeName(kind, name, problem)
    assert isinstance(name, str)
    if len(_checked_names) > 10_000:
        _checked_names.clear()
    _checked_names.add((name, limit))
    return name


def check_type_filter(types: Iterable[str] | None, settings: Settings) -> list[str] | None:
    """The ``types=`` of ``read_all`` as a list, each name one that can be looked up."""
    if types is None:
        return None
    if isinstance(types, (str, bytes)) or not isinstance(types, Iterable):
        raise errors.InvalidReadRange(
            f"read_all(types=...) takes a list of event type names, got {types!r}; "
            f"write types=[{types!r}] for one type"
        )
    names = list(types)
    for name in names:
        problem = sendable_problem(name, settings.max_type_length)
        if problem is not None:
            raise errors.InvalidTypeName("event type filter", name, problem)
    return names


def check_aggregate_id(aggregate: str, id: object, settings: Settings) -> str:
    """``id`` if it can identify an aggregate; else :class:`~cqrs.errors.InvalidAggregateId`."""
    problem = name_problem(id, settings.max_id_length)
    if problem is not None:
        raise errors.InvalidAggregateId(aggregate, id, problem)
    assert isinstance(id, str)
    return id


def check_command_id(command_id: object, settings: Settings) -> str:
    """``command_id`` if usable; else :class:`~cqrs.errors.InvalidCommandId`."""
    problem = name_problem(command_id, settings.max_command_id_length)
    if problem is not None:
        raise errors.InvalidCommandId(command_id, problem)
    assert isinstance(command_id, str)
    return command_id


# -- payloads and metadata -------------------------------------------------------


_attrs_fields: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    try:
        return _attrs_fields[cls]
    except KeyError:
        names = tuple(f.name for f in attrs.fields(cls)) if attrs.has(cls) else None
        _attrs_fields[cls] = names
        return names


def _children(value: Any) -> Iterable[Any] | None:
    kind = type(value)
    if kind is dict:
        return value.values()  # type: ignore[no-any-return]
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        return value  # type: ignore[no-any-return]
    getter = _field_getters[kind] if kind in _field_getters else _field_getter(kind)
    if getter is not None:
        return getter(value)
    if isinstance(value, Mapping):
        return value.values()
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    return None


# An attrs class's field values as a tuple, read in C (operator.attrgetter); None
# for a class that is not attrs. One look-up per event of a batch.
_field_getters: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {}


def _field_getter(cls: type) -> Callable[[Any], tuple[Any, ...]] | None:
    names = _field_names(cls)
    if names is None:
        getter = None
    elif len(names) < 2:  # attrgetter of one name answers the value, not a tuple; of none fails
        getters = [operator.attrgetter(name) for name in names]
        getter = lambda value: tuple(get(value) for get in getters)  # noqa: E731
    else:
        getter = operator.attrgetter(*names)
    _field_getters[cls] = getter
    return getter


def _flat(value: object) -> bool:
    """Whether ``value`` is an attrs object whose fields all hold scalars (most events)."""
    kind = type(value)
    getter = _field_getters[kind] if kind in _field_getters else _field_getter(kind)
    return getter is not None and _LEAVES.issuperset(map(type, getter(value)))


def check_depth(value: object, limit: int, what: str) -> None:
    """Raise :class:`~cqrs.errors.PayloadTooDeep` when ``value`` nests more than ``limit``
    levels of dicts, lists, tuples, sets or attrs objects (a cycle never ends, so it
    does too). Iterative: a hostile structure cannot exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        children = _children(item)
        if children is None:
            continue
        for child in children:
            if type(child) in _LEAVES:
                continue
            if depth >= limit:
                raise errors.PayloadTooDeep(what, limit)
            push((child, depth + 1))


def check_metadata(metadata: object, settings: Settings, what: str = "metadata") -> None:
    """Raise :class:`~cqrs.errors.InvalidMetadata` unless ``metadata`` is ``None`` or a
    mapping with str keys whose strings are UTF-8 text, nested within the depth limit
    (else :class:`~cqrs.errors.PayloadTooDeep`)."""
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise errors.InvalidMetadata(f"{what} is a {type(metadata).__name__}, not a mapping")
    for key, value in metadata.items():  # the common case: flat, ASCII, str keys
        if type(key) is not str or not key.isascii() or type(value) not in _LEAVES:
            break
        if type(value) is str and not value.isascii():
            break
    else:
        return
    limit = settings.max_nesting_depth
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is str:
            if not item.isascii() and sendable_problem(item, len(item)) is not None:
                raise errors.InvalidMetadata(
                    f"{what} holds {item[:40]!r}, which contains a lone surrogate"
                )
            continue
        if isinstance(item, Mapping):
            for key in item:
                if not isinstance(key, str):
                    raise errors.InvalidMetadata(
                        f"{what} has the key {key!r}, a {type(key).__name__}; keys must be "
                        "str (JSON would silently turn it into a string)"
                    )
                stack.append((key, depth))
        children = _children(item)
        if children is None:
            continue
        for child in children:
            if type(child) in _LEAVES and type(child) is not str:
                continue
            if depth >= limit and type(child) is not str:
                raise errors.PayloadTooDeep(f"event {what}", limit)
            stack.append((child, depth + 1))


def check_append(
    events: Iterable[Event | NewEvent[Event]],
    settings: Settings,
    *,
    stream_type: object = None,
    metadata: object = None,
) -> Sequence[Event | NewEvent[Event]]:
    """Everything about an append's arguments that can be checked without encoding:
    the stream type, the shared and per-event metadata, the payloads' depth.

    Answers ``events`` as a sequence (a generator is read once, here).
    """
    if stream_type is not None:
        check_type_name("stream type", stream_type, settings)
    check_metadata(metadata, settings)
    if isinstance(events, (Event, NewEvent)):
        return events  # type: ignore[return-value]  # the store explains: a list is expected
    if not isinstance(events, (list, tuple)):
        if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Iterable):
            raise errors.InvalidInput(
                f"append takes a list of events, got {type(events).__name__}; pass [event, ...]"
            )
        events = list(events)
    depth = settings.max_nesting_depth
    for item in events:
        if isinstance(item, NewEvent):
            check_metadata(item.metadata, settings, "NewEvent.metadata")
            item = item.event
        if isinstance(item, Event) and not _flat(item):
            check_depth(item, depth, f"event {type(item).__qualname__}")
    return events


def check_event_types(types: Iterable[str], settings: Settings) -> None:
    """Every encoded event type name is usable (see :func:`check_type_name`)."""
    for name in set(types):
        check_type_name("event type", name, settings)


def check_version_room(stream_id: str, expected: object, count: int) -> None:
    """Raise :class:`~cqrs.errors.StreamFull` when an append of ``count`` events at an
    exact ``expected`` version would pass the largest version."""
    if type(expected) is int and expected + count > INT32_MAX:
        raise errors.StreamFull(stream_id, expected, count)


def full_stream(error: errors.CqrsError, stream_id: str, count: int) -> errors.CqrsError:
    """``error`` (an append's refusal), or :class:`~cqrs.errors.StreamFull` when the
    stream's version leaves no room for ``count`` more events (nothing else can help)."""
    actual = getattr(error, "actual", None)
    full = isinstance(actual, int) and actual + count > INT32_MAX
    if full and isinstance(error, errors.ConcurrencyError):
        return errors.StreamFull(stream_id, actual, count)
    return error


# -- reads ---------------------------------------------------------------------------


def _version(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT32_MAX:
        raise errors.InvalidReadRange(
            f"read_stream({name}=...) takes an int from 0 to {INT32_MAX}, got {value!r}"
            + ("; leave to_version out to read to the end" if name == "to_version" else "")
        )
    return value


def check_read_stream(
    stream_id: object, from_version: object, to_version: object, settings: Settings
) -> None:
    """The arguments of ``read_stream``."""
    check_stream_id_to_read(stream_id, settings)
    _version("from_version", from_version)
    if to_version is not None:
        _version("to_version", to_version)


def _position_fits(position: Position) -> bool:
    xid, pos = position.transaction_id, position.global_position
    return type(xid) is int and type(pos) is int and 0 <= xid < 2**64 and 0 <= pos < 2**63


def check_archive(stream_id: object, archived: object, settings: Settings) -> None:
    """The arguments of ``archive``."""
    check_stream_id_to_read(stream_id, settings)
    if not isinstance(archived, bool):
        raise errors.InvalidInput(f"archive(archived=...) takes True or False, got {archived!r}")


def check_read_all(
    after: object, limit: object, types: Iterable[str] | None, settings: Settings
) -> list[str] | None:
    """The arguments of ``read_all``; answers ``types`` as a list (or ``None``)."""
    if not isinstance(after, Position) or not _position_fits(after):
        raise errors.InvalidReadRange(
            f"read_all(after=...) takes a Position, got {after!r}; pass the position of the "
            "last event read (or Position.parse(token) for a token)"
        )
    most = settings.max_read_limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise errors.InvalidReadRange(
            f"read_all(limit=...) takes an int from 1 to {most} (Settings.max_read_limit), "
            f"got {limit!r}; read on in pages with after= the last position"
        )
    return check_type_filter(types, settings)
