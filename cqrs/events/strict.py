"""Internal: strict decoders and encode checks for event classes, compiled once per class.

The codec never changes a stored value to make it fit: a field declared
``int`` takes a JSON integer (not ``3.7``, not ``"3"``, not ``true``), ``bool``
takes ``true``/``false`` (not ``"false"``), ``str`` takes a string (not
``123``). What the encoder writes reads back: ``Decimal`` from its string,
``datetime``/``date`` from ISO 8601 text, ``UUID`` from its text, enums by
value (of the value's own JSON type), tuples and lists from arrays, mappings
from objects. An integer is fine for a ``float`` field (PostgreSQL prints the
``jsonb`` number ``1e20`` as ``100000000000000000000``; it comes back as the
float ``1e20``). Missing fields take their declared default or are an error;
fields the class does not declare are an error unless the class (or the
codec) ignores them (``Event.extra_fields``).

For each class, :func:`compile_decoder` builds a Python function with inline
type checks for the common case (every declared field present, nothing
else) and a field-by-field path that reports the first problem with its
path (``lines[1].price.amount``) as a :class:`Mismatch`. Types the module
does not know (a class with a hook registered on the codec's cattrs
converter) are handed to the converter.

>>> import attrs
>>> @attrs.frozen
... class Point:
...     x: int
...     label: str = ""
>>> decode = Compiler(None).decoder(Point)
>>> decode({"x": 1})
Point(x=1, label='')
>>> try:
...     decode({"x": 1.5})
... except Mismatch as exc:
...     print(exc.where(), "-", exc.problem)
x - expected an integer, got the number 1.5
"""

from __future__ import annotations

import collections.abc as cabc
import enum
import inspect
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast

import attrs

if typing.TYPE_CHECKING:
    import cattrs

ExtraFields = Literal["forbid", "ignore"]
"""What decoding does with stored fields an event class does not declare."""

Fn = Callable[[Any], Any]
Check = Callable[[Any], None]


class Mismatch(Exception):
    """A value that does not fit its declared type; ``path`` leads to it from the event."""

    def __init__(self, problem: str, path: list[str | int] | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str | int] = path if path is not None else []

    def where(self) -> str:
        """The path as text: ``lines[1].price.amount``, or ``""`` for the payload itself."""
        out = ""
        for step in self.path:
            if isinstance(step, int):
                out += f"[{step}]"
            else:
                out += f".{step}" if out and step.isidentifier() else f"[{step!r}]" if out else step
        return out


def show(value: Any) -> str:
    """A JSON value as the error message names it: ``the string '3'``, ``an array``."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {text!r}"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"the number {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or str(tp).replace("typing.", "")


# -- decoding: one structuring function per type ---------------------------------------


def slot_setters(cls: type, names: Sequence[str]) -> tuple[Callable[[Any, Any], None], ...] | None:
    """The slots' ``__set__`` of ``names``, when building ``cls`` by ``object.__new__`` and
    setting them in turn is exactly what its ``__init__`` does; else ``None``.

    That holds for an attrs class whose generated ``__init__`` only sets each of
    ``names`` (no validator, converter, factory, ``__attrs_post_init__``, cached
    hash: each would show as a global name the generated code reads), with
    slots and the default ``__new__``. About 40 % cheaper than the ``__init__``
    on a five-field event (no keyword parsing, no frozen ``__setattr__`` lookup).

    >>> @attrs.frozen
    ... class Point:
    ...     x: int
    ...     y: int
    >>> sx, sy = slot_setters(Point, ["x", "y"])
    >>> p = object.__new__(Point); sx(p, 1); sy(p, 2); p
    Point(x=1, y=2)
    >>> @attrs.frozen
    ... class Checked:
    ...     x: int = attrs.field(validator=attrs.validators.gt(0))
    >>> slot_setters(Checked, ["x"]) is None
    True
    """
    init = getattr(cls, "__init__", None)
    code = getattr(init, "__code__", None)
    fields = getattr(cls, "__attrs_attrs__", None)
    if code is None or fields is None or not code.co_filename.startswith("<attrs generated"):
        return None
    if cast(Any, cls).__new__ is not object.__new__ or sorted(a.name for a in fields) != sorted(
        names
    ):
        return None
    if any(not a.init or a.validator or a.converter for a in fields):
        return None
    if not set(code.co_names) <= {"_cached_setattr_get", *names}:
        return None
    descriptors = [inspect.getattr_static(cls, name, None) for name in names]
    if not all(isinstance(d, types.MemberDescriptorType) for d in descriptors):
        return None
    return tuple(d.__set__ for d in descriptors)


def _str(v: Any) -> Any:
    if type(v) is str:
        return v
    raise Mismatch(f"expected a string, got {show(v)}")


def _int(v: Any) -> Any:
    if type(v) is int:
        return v
    raise Mismatch(f"expected an integer, got {show(v)}")


def _bool(v: Any) -> Any:
    if type(v) is bool:
        return v
    raise Mismatch(f"expected true or false, got {show(v)}")


def _float(v: Any) -> Any:
    if type(v) is float:
        return v
    if type(v) is int:
        try:
            return float(v)
        except OverflowError:
            raise Mismatch(f"{show(v)} is too large for a float") from None
    raise Mismatch(f"expected a number, got {show(v)}")


def _decimal(v: Any) -> Any:
    if type(v) is not str:
        raise Mismatch(
            f"expected a decimal as a string (how the codec writes Decimals), got {show(v)}"
        )
    try:
        return Decimal(v)
    except InvalidOperation:
        raise Mismatch(f"{show(v)} is not a decimal number") from None


def _iso(kind: type[date] | type[datetime], label: str) -> Fn:
    parse = kind.fromisoformat

    def structure(v: Any) -> Any:
        if type(v) is not str:
            raise Mismatch(f"expected {label} as ISO 8601 text, got {show(v)}")
        try:
            return parse(v)
        except ValueError:
            raise Mismatch(f"{show(v)} is not an ISO 8601 {label}") from None

    return structure


def _uuid(v: Any) -> Any:
    if type(v) is not str:
        raise Mismatch(f"expected a UUID as text, got {show(v)}")
    try:
        return uuid.UUID(v)
    except ValueError:
        raise Mismatch(f"{show(v)} is not a UUID") from None


def _any(v: Any) -> Any:
    return v


_SIMPLE: dict[Any, Fn] = {
    str: _str,
    int: _int,
    bool: _bool,
    float: _float,
    Decimal: _decimal,
    datetime: _iso(datetime, "a datetime"),
    date: _iso(date, "a date"),
    uuid.UUID: _uuid,
    Any: _any,
    object: _any,
}

# Inline checks and expressions for the generated fast path: (condition, expression)
# on a local ``v``; helpers are bound into the generated function's namespace.
_INLINE: dict[Any, tuple[str, str]] = {
    str: ("type({v}) is str", "{v}"),
    int: ("type({v}) is int", "{v}"),
    bool: ("type({v}) is bool", "{v}"),
    float: ("type({v}) is float", "{v}"),
    Decimal: ("type({v}) is str", "_Decimal({v})"),
    datetime: ("type({v}) is str", "_datetime({v})"),
    date: ("type({v}) is str", "_date({v})"),
    uuid.UUID: ("type({v}) is str", "_UUID({v})"),
    Any: ("True", "{v}"),
    object: ("True", "{v}"),
}
_INLINE_NAMES = {
    "_Decimal": Decimal,
    "_datetime": datetime.fromisoformat,
    "_date": date.fromisoformat,
    "_UUID": uuid.UUID,
}

_SEQUENCES = {
    tuple: tuple,
    list: list,
    cabc.Sequence: tuple,
    cabc.MutableSequence: list,
    set: set,
    frozenset: frozenset,
    cabc.Set: frozenset,
    cabc.MutableSet: set,
}
_MAPPINGS = {dict, cabc.Mapping, cabc.MutableMapping}


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]``, ``NewType``s and ``Final[X]`` -> ``X``; TypeVars -> ``Any``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated or origin is typing.Final:
            tp = typing.get_args(tp)[0]
        elif hasattr(tp, "__supertype__"):
            tp = tp.__supertype__
        elif isinstance(tp, typing.TypeVar):
            return Any
        else:
            return tp


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


class Compiler:
    """Builds and caches strict decoders and encode checks for one codec.

    ``converter`` structures types this module does not know (custom hooks);
    ``extra_fields`` is the policy for classes that do not set their own.
    """

    def __init__(
        self, converter: cattrs.Converter | None, extra_fields: ExtraFields = "forbid"
    ) -> None:
        self.converter = converter
        self.extra_fields = extra_fields
        self.decoders: dict[type, Fn] = {}
        self.checks: dict[type, Check] = {}

    # -- decoding ------------------------------------------------------------------

    def decoder(self, cls: type) -> Fn:
        """The strict structuring function of attrs class ``cls`` (cached).

        Stored fields ``cls`` does not declare follow ``cls.extra_fields`` when the
        class sets it, else the compiler's ``extra_fields``.
        """
        fn = self.decoders.get(cls)
        if fn is None:
            fn = self.decoders[cls] = self._compile_class(cls)
        return fn

    def structurer(self, tp: Any) -> Fn:
        """The strict structuring function for values declared as ``tp``."""
        tp = _unwrap(tp)
        simple = _SIMPLE.get(tp)
        if simple is not None:
            return simple
        if tp is None or tp is type(None):
            return _none
        members = _union_args(tp)
        if members is not None:
            return self._union(members)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Literal:
            return _literal(args)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if args == ((),):  # tuple[()]
                return _fixed_tuple(())
            return _fixed_tuple(tuple(self.structurer(a) for a in args))
        container = _SEQUENCES.get(origin or tp)
        if container is not None:
            return _sequence(container, self.structurer(args[0] if args else Any))
        if (origin or tp) in _MAPPINGS:
            key, value = args if len(args) == 2 else (Any, Any)
            return _mapping(self.structurer(key), self.structurer(value))
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            plain = _enum(tp)
            if plain is not None:
                return plain
        if isinstance(tp, type) and attrs.has(tp):
            return self._nested(tp)
        return self._fallback(tp)

    def _nested(self, cls: type) -> Fn:
        # Looked up at call time: classes may refer to themselves (trees).
        def structure(v: Any) -> Any:
            return self.decoder(cls)(v)

        return structure

    def _union(self, members: tuple[Any, ...]) -> Fn:
        optional = type(None) in members
        rest = [m for m in members if m is not type(None)]
        if len(rest) == 1:
            inner = self.structurer(rest[0])

            def optional_one(v: Any) -> Any:
                return None if v is None else inner(v)

            return optional_one
        fns = [self.structurer(m) for m in rest]
        names = " | ".join(_type_name(m) for m in members)

        def union(v: Any) -> Any:
            if v is None and optional:
                return None
            for fn in fns:
                try:
                    return fn(v)
                except Mismatch:
                    continue
            raise Mismatch(f"{show(v)} fits none of {names}")

        return union

    def _fallback(self, tp: Any) -> Fn:
        converter = self.converter
        if converter is None:
            raise TypeError(f"no strict decoder for {tp!r} and no converter to fall back on")

        def structure(v: Any) -> Any:
            try:
                return converter.structure(v, tp)
            except Exception as exc:
                raise Mismatch(f"{show(v)} does not fit {_type_name(tp)}: {exc}") from exc

        return structure

    def _compile_class(self, cls: type) -> Fn:
        try:
            attrs.resolve_types(cls)
        except Exception:  # unresolvable string annotations: the converter decides
            return self._fallback(cls)
        policy = getattr(cls, "extra_fields", None) or self.extra_fields
        fields = [a for a in attrs.fields(cls) if a.init]
        plan = [
            (a.name, a.alias or a.name, self.structurer(a.type), a.default is attrs.NOTHING)
            for a in fields
        ]
        known = frozenset(a.name for a in fields)
        forbid = policy == "forbid"
        qualname = cls.__qualname__

        def slow(d: Any) -> Any:
            if type(d) is not dict:
                raise Mismatch(f"expected an object for {qualname}, got {show(d)}")
            if forbid and not known.issuperset(d):
                extra = sorted(set(d) - known)
                raise Mismatch(
                    f"{qualname} declares no field {extra[0]!r}"
                    + (f" (nor {extra[1:]})" if len(extra) > 1 else ""),
                    [extra[0]],
                )
            kwargs = {}
            for name, alias, fn, required in plan:
                if name in d:
                    try:
                        kwargs[alias] = fn(d[name])
                    except Mismatch as exc:
                        exc.path.insert(0, name)
                        raise
                elif required:
                    raise Mismatch(f"the required field is missing from {qualname}", [name])
            return cls(**kwargs)

        return self._fast(cls, plan, slow)

    def _fast(self, cls: type, plan: list[tuple[str, str, Fn, bool]], slow: Fn) -> Fn:
        """A generated function for the usual payload: every field, nothing else."""
        namespace: dict[str, Any] = {"_cls": cls, "_slow": slow, **_INLINE_NAMES}
        setters = slot_setters(cls, [name for name, *_ in plan])
        reads, conditions, kwargs = [], [], []
        for i, (name, alias, fn, _) in enumerate(plan):
            v = f"v{i}"
            reads.append(f"{v} = d[{name!r}]")
            inline = next((c for t, c in _INLINE.items() if _SIMPLE[t] is fn), None)
            if inline is not None:
                condition, expression = inline
                if condition != "True":
                    conditions.append(condition.format(v=v))
                kwargs.append(f"{alias}={expression.format(v=v)}")
            else:
                namespace[f"_f{i}"] = fn
                kwargs.append(f"{alias}=_f{i}({v})")
        if setters is None:
            build = [f"                return _cls({', '.join(kwargs)})"]
        else:  # the attrs __init__ would only set each slot: set them, one call each
            namespace["_new"] = object.__new__
            build = ["                o = _new(_cls)"]
            for i, (setter, kwarg) in enumerate(zip(setters, kwargs, strict=True)):
                namespace[f"_s{i}"] = setter
                build.append(f"                _s{i}(o, {kwarg.partition('=')[2]})")
            build.append("                return o")
        body = [
            "def decode(d):",
            f"    if type(d) is dict and len(d) == {len(plan)}:",
            "        try:",
            *(f"            {r}" for r in reads),
            f"            if {' and '.join(conditions) or 'True'}:",
            *build,
            "        except Exception:",
            "            pass",
            "    return _slow(d)",
        ]
        # The source holds field names only as repr() literals and aliases (identifiers).
        exec("\n".join(body), namespace)
        decode: Fn = namespace["decode"]
        return decode

    # -- encoding ------------------------------------------------------------------

    def check(self, cls: type) -> Check:
        """A function raising :class:`Mismatch` when an instance of ``cls`` holds a value
        that does not fit its declared type (cached)."""
        fn = self.checks.get(cls)
        if fn is None:
            fn = self.checks[cls] = self._compile_check(cls)
        return fn

    def checker(self, tp: Any) -> Check:
        """The encode-side check for values declared as ``tp``."""
        tp = _unwrap(tp)
        if tp is Any or tp is object:
            return _check_json
        simple = _CHECKS.get(tp)
        if simple is not None:
            return simple
        if tp is None or tp is type(None):
            return _expect_none
        members = _union_args(tp)
        if members is not None:
            return _any_of([self.checker(m) for m in members], tp)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Literal:
            return _one_of(args)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return _check_fixed([self.checker(a) for a in args if a != ()])
        container = _SEQUENCES.get(origin or tp)
        if container is not None:
            kinds = (list, tuple) if container in (list, tuple) else (set, frozenset)
            return _check_sequence(kinds, self.checker(args[0] if args else Any))
        if (origin or tp) in _MAPPINGS:
            key, value = args if len(args) == 2 else (str, Any)
            return _check_mapping(self.checker(key), self.checker(value))
        if isinstance(tp, type) and (issubclass(tp, enum.Enum) or attrs.has(tp)):
            return self._check_instance(tp)
        return _no_check  # a type with a converter hook: the hook decides

    def _check_instance(self, cls: type) -> Check:
        name = _type_name(cls)
        nested = attrs.has(cls)

        def check(v: Any) -> None:
            if not isinstance(v, cls):
                raise Mismatch(f"expected {name}, got {_held(v)}")
            if nested:
                self.check(cls)(v)

        return check

    def _compile_check(self, cls: type) -> Check:
        try:
            attrs.resolve_types(cls)
        except Exception:
            return _no_check
        plan = [
            (a.name, _unwrap(a.type), self.checker(a.type)) for a in attrs.fields(cls) if a.init
        ]

        def walk(obj: Any, fields: list[tuple[str, Any, Check]]) -> None:
            for name, _, fn in fields:
                try:
                    fn(getattr(obj, name))
                except Mismatch as exc:
                    exc.path.insert(0, name)
                    raise

        # The usual event: every simple field holds exactly its type; the others walk.
        conditions = [
            _CHECK_INLINE[tp].format(v=f"o.{name}")
            for name, tp, _ in plan
            if tp in _CHECK_INLINE and name.isidentifier()
        ]
        rest = [f for f in plan if not (f[1] in _CHECK_INLINE and f[0].isidentifier())]
        namespace: dict[str, Any] = {
            "_walk": walk, "_plan": plan, "_rest": rest, **_CHECK_NAMES,
        }  # fmt: skip
        body = [
            "def check(o):",
            f"    if not ({' and '.join(conditions) or 'True'}):",
            "        return _walk(o, _plan)",
            *(["    _walk(o, _rest)"] if rest else []),
        ]
        # The source holds attrs field names that are identifiers, nothing else.
        exec("\n".join(body), namespace)
        check: Check = namespace["check"]
        return check


_CHECK_INLINE: dict[Any, str] = {
    str: "type({v}) is str",
    int: "type({v}) is int",
    bool: "type({v}) is bool",
    float: "(type({v}) is float and {v} - {v} == 0.0)",
    Decimal: "type({v}) is _Decimal",
    datetime: "type({v}) is _datetime",
    date: "type({v}) is _date",
    uuid.UUID: "type({v}) is _UUID",
}
_CHECK_NAMES = {"_Decimal": Decimal, "_datetime": datetime, "_date": date, "_UUID": uuid.UUID}


def _none(v: Any) -> Any:
    if v is None:
        return None
    raise Mismatch(f"expected null, got {show(v)}")


def _literal(values: tuple[Any, ...]) -> Fn:
    allowed = {(type(x), x) for x in values}

    def structure(v: Any) -> Any:
        if type(v) in (str, int, bool) and (type(v), v) in allowed:
            return v
        raise Mismatch(f"expected one of {list(values)!r}, got {show(v)}")

    return structure


def _enum(cls: type[enum.Enum]) -> Fn | None:
    by_value = {}
    for member in cls:
        value = member.value
        if type(value) not in (str, int, float, bool):
            return None  # values JSON cannot hold as they are: the converter decides
        by_value[(type(value), value)] = member
    name = cls.__qualname__
    choices = [m.value for m in cls]

    def structure(v: Any) -> Any:
        member = by_value.get((type(v), v)) if type(v) in (str, int, float, bool) else None
        if member is None:
            raise Mismatch(f"expected a value of {name} (one of {choices!r}), got {show(v)}")
        return member

    return structure


def _sequence(container: Callable[[Any], Any], item: Fn) -> Fn:
    plain_kinds: dict[Fn, type] = {_str: str, _int: int, _bool: bool}
    kind = plain_kinds.get(item)
    if kind is not None or item is _any:  # items kept as they are: check, then copy

        def plain(v: Any) -> Any:
            if type(v) is not list:
                raise Mismatch(f"expected an array, got {show(v)}")
            if kind is not None:
                for i, x in enumerate(v):
                    if type(x) is not kind:
                        try:
                            item(x)
                        except Mismatch as exc:
                            exc.path.insert(0, i)
                            raise
            return container(v)

        return plain

    def structure(v: Any) -> Any:
        if type(v) is not list:
            raise Mismatch(f"expected an array, got {show(v)}")
        out = []
        for i, x in enumerate(v):
            try:
                out.append(item(x))
            except Mismatch as exc:
                exc.path.insert(0, i)
                raise
        return container(out)

    return structure


def _fixed_tuple(items: tuple[Fn, ...]) -> Fn:
    def structure(v: Any) -> Any:
        if type(v) is not list:
            raise Mismatch(f"expected an array, got {show(v)}")
        if len(v) != len(items):
            raise Mismatch(f"expected an array of {len(items)} items, got {len(v)}")
        out = []
        for i, (fn, x) in enumerate(zip(items, v, strict=True)):
            try:
                out.append(fn(x))
            except Mismatch as exc:
                exc.path.insert(0, i)
                raise
        return tuple(out)

    return structure


def _mapping(key: Fn, value: Fn) -> Fn:
    def structure(v: Any) -> Any:
        if type(v) is not dict:
            raise Mismatch(f"expected an object, got {show(v)}")
        out = {}
        for k, x in v.items():
            try:
                out[key(k)] = value(x)
            except Mismatch as exc:
                exc.path.insert(0, k)
                raise
        return out

    return structure


# -- encoding: checks on the values an event holds ---------------------------------------


def _held(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _is(kinds: type | tuple[type, ...], label: str, exclude: type | None = None) -> Check:
    def check(v: Any) -> None:
        if not isinstance(v, kinds) or (exclude is not None and isinstance(v, exclude)):
            raise Mismatch(f"expected {label}, got {_held(v)}")

    return check


def _check_float(v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Mismatch(f"expected a float, got {_held(v)}")
    if isinstance(v, float) and v - v != 0.0:
        raise Mismatch(f"{v!r} is not a finite number, which JSON cannot hold")
    if isinstance(v, int):
        try:
            float(v)
        except OverflowError:
            raise Mismatch(f"{_held(v)} is too large for a float") from None


_CHECKS: dict[Any, Check] = {
    str: _is(str, "a str"),
    int: _is(int, "an int", exclude=bool),
    bool: _is(bool, "a bool"),
    float: _check_float,
    Decimal: _is(Decimal, "a Decimal"),
    datetime: _is(datetime, "a datetime"),
    date: _is(date, "a date", exclude=datetime),
    uuid.UUID: _is(uuid.UUID, "a uuid.UUID"),
}


def _no_check(v: Any) -> None:
    return None


def _expect_none(v: Any) -> None:
    if v is not None:
        raise Mismatch(f"expected None, got {_held(v)}")


def _check_json(v: Any) -> None:
    """Values of ``Any`` fields: mapping keys must be str (JSON would turn ``{1: ...}``
    into ``{"1": ...}``). NaN and what JSON cannot hold at all fail in the encoder."""
    if isinstance(v, cabc.Mapping):
        for k, x in v.items():
            if not isinstance(k, str):
                raise Mismatch(f"mapping key {_held(k)} is not a str (JSON keys are strings)")
            try:
                _check_json(x)
            except Mismatch as exc:
                exc.path.insert(0, k)
                raise
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            try:
                _check_json(x)
            except Mismatch as exc:
                exc.path.insert(0, i)
                raise


def _any_of(checks: list[Check], tp: Any) -> Check:
    name = _type_name(tp)

    def check(v: Any) -> None:
        for fn in checks:
            try:
                fn(v)
                return
            except Mismatch:
                continue
        raise Mismatch(f"expected {name}, got {_held(v)}")

    return check


def _one_of(values: tuple[Any, ...]) -> Check:
    allowed = {(type(x), x) for x in values}

    def check(v: Any) -> None:
        if (type(v), v) not in allowed:
            raise Mismatch(f"expected one of {list(values)!r}, got {_held(v)}")

    return check


def _check_fixed(items: list[Check]) -> Check:
    def check(v: Any) -> None:
        if not isinstance(v, (list, tuple)) or len(v) != len(items):
            raise Mismatch(f"expected a tuple of {len(items)} items, got {_held(v)}")
        for i, (fn, x) in enumerate(zip(items, v, strict=True)):
            try:
                fn(x)
            except Mismatch as exc:
                exc.path.insert(0, i)
                raise

    return check


def _check_sequence(kinds: tuple[type, ...], item: Check) -> Check:
    def check(v: Any) -> None:
        if not isinstance(v, kinds):
            raise Mismatch(f"expected a {' or '.join(k.__name__ for k in kinds)}, got {_held(v)}")
        items = cast("Iterable[Any]", v)
        for i, x in enumerate(items):
            try:
                item(x)
            except Mismatch as exc:
                exc.path.insert(0, i)
                raise

    return check


def _check_mapping(key: Check, value: Check) -> Check:
    def check(v: Any) -> None:
        if not isinstance(v, cabc.Mapping):
            raise Mismatch(f"expected a mapping, got {_held(v)}")
        for k, x in v.items():
            if not isinstance(k, str):
                raise Mismatch(f"mapping key {_held(k)} is not a str (JSON keys are strings)")
            try:
                key(k)
                value(x)
            except Mismatch as exc:
                exc.path.insert(0, k)
                raise

    return check
