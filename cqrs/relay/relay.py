"""Public: ``Relay``, the events a service lets out, and what they look like outside.

A relay is a projection whose "read model" is a JetStream stream: the runner
(:class:`~cqrs.relay.runner.RelayRunner`) reads its batches through the same
gap-free cursor, and its batch handler publishes the batch and waits for
JetStream to acknowledge every message *inside* the batch transaction, before
the checkpoint's compare-and-set commits. So the checkpoint only ever moves
past events the broker has, a relay killed between publish and commit
publishes the batch again, and JetStream drops the repeats (``Nats-Msg-Id`` =
event id). Shards, leases, the failure policy and ``cqrs projections status``
are the projections' own.

Only selected event types leave; each may be mapped to an integration event
by a function (return ``None`` to keep one event in)::

    relay = Relay("shop-out", prefix="shop", stream="SHOP")
    relay.select(OrderPlaced)                                  # stored payload, default subject
    relay.select(OrderShipped, subject="shop.orders.shipped")  # a fixed subject

    @relay.maps(OrderPaid, type="shop.order_paid", schema_version=2)
    def _paid(r: RecordedEvent[OrderPaid]) -> dict[str, object]:
        return {"order_id": r.event.order_id, "amount": str(r.event.amount)}

    RelayRunner(engine, [relay], nats_url="nats://127.0.0.1:4222").run_forever()
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

from cqrs.errors import BrokerError, DedupeWindowTooShort, RelayError
from cqrs.events.codec import EventCodec
from cqrs.events.model import Event, RecordedEvent
from cqrs.events.registry import EventRegistry
from cqrs.projections.declarative import FailurePolicy, Projection, ProjectionContext
from cqrs.relay import messages as h
from cqrs.relay.decode import StoredPayload
from cqrs.relay.messages import IntegrationEvent, OutgoingMessage, to_json
from cqrs.relay.publisher import JetStreamPublisher
from cqrs.relay.subjects import check_subject, default_subject

EV = TypeVar("EV", bound=Event)
Mapped = IntegrationEvent | Mapping[str, Any] | None
Mapper = Callable[[RecordedEvent[Any]], Mapped]
Subject = str | Callable[[RecordedEvent[Any]], str]


class BrokerDown(BaseException):
    """Internal signal: the broker failed a batch; roll it back, park nothing.

    A ``BaseException`` so that no failure policy takes it for a bad event
    (those catch ``Exception``); :class:`~cqrs.relay.runner.RelayRunner`
    catches it, records the error and backs off.
    """

    def __init__(self, error: BrokerError) -> None:
        super().__init__(str(error))
        self.error = error


@attrs.frozen
class Route:
    """How one selected event type leaves: its subject, mapping, type and version."""

    subject: Subject | None = None
    mapper: Mapper | None = None
    type: str | None = None
    schema_version: int | None = None

    def __call__(self, recorded: RecordedEvent[Any], ctx: ProjectionContext) -> None:
        raise RelayError("a Relay publishes to JetStream: run it with RelayRunner")


class Relay(Projection):
    """Publishes the selected events of the log to JetStream subjects.

    ``prefix`` starts every default subject (see :mod:`cqrs.relay.subjects`);
    ``stream`` names the JetStream stream the messages must land in.
    ``shards``, ``batch_size`` and ``policy`` mean what they mean for a
    projection: a mapping function that raises is retried, then its event
    (and the later events of its stream) parked in ``dead_letters``.
    """

    def __init__(
        self,
        name: str,
        *,
        prefix: str = "events",
        stream: str | None = None,
        shards: int = 1,
        batch_size: int = 500,
        policy: FailurePolicy | None = None,
        registry: EventRegistry | None = None,
    ) -> None:
        super().__init__(name, shards=shards, batch_size=batch_size, policy=policy,
                         registry=registry)  # fmt: skip
        self.prefix = check_subject(prefix, what="relay prefix")
        self.stream = stream
        self.publisher: JetStreamPublisher | None = None
        self.codec = EventCodec(self.registry)
        self.published = 0  # messages JetStream acknowledged (repeats included)
        self.duplicates = 0  # of which JetStream said "duplicate": dropped repeats
        self.repeat_possible = False  # set by the runner: this batch may have been sent before
        self.report: DedupeWindowTooShort | None = None
        self._subjects: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"Relay({self.name!r})"

    # -- selection --------------------------------------------------------------

    def select(
        self,
        *types: type[Event],
        subject: Subject | None = None,
        map: Mapper | None = None,
        type: str | None = None,
        schema_version: int | None = None,
    ) -> Relay:
        """Let ``types`` out; optionally with a ``subject``, a ``map`` function, a ``type``."""
        if not types:
            raise RelayError(f"relay {self.name!r}: select() needs at least one event type")
        if isinstance(subject, str):
            check_subject(subject, what=f"relay {self.name!r}: subject")
        elif subject is not None and not callable(subject):
            raise RelayError(f"relay {self.name!r}: subject must be a string or a function")
        if map is not None and not callable(map):
            raise RelayError(f"relay {self.name!r}: map must be a function of the event")
        if type is not None:
            check_subject(type.replace(" ", "_"), what=f"relay {self.name!r}: type")
        for t in types:
            if t in self._handlers:
                raise RelayError(
                    f"relay {self.name!r} selects {t.__qualname__} twice; one selection "
                    "(subject, mapping) per event type"
                )
        self.on(*types)  # validates the classes
        self._add(types, Route(subject, map, type, schema_version))
        return self

    def maps(
        self,
        event_type: type[EV],
        *,
        subject: Subject | None = None,
        type: str | None = None,
        schema_version: int | None = None,
    ) -> Callable[[Callable[[RecordedEvent[EV]], Mapped]], Callable[[RecordedEvent[EV]], Mapped]]:
        """Decorate the mapping function of ``event_type`` (the function form of ``select``)."""

        def decorate(
            fn: Callable[[RecordedEvent[EV]], Mapped],
        ) -> Callable[[RecordedEvent[EV]], Mapped]:
            self.select(event_type, subject=subject, map=fn, type=type,
                        schema_version=schema_version)  # fmt: skip
            return fn

        return decorate

    def route_for(self, cls: type[Event]) -> Route | None:
        """The selection an event of class ``cls`` leaves by (``None``: it stays in)."""
        for handler in self.handlers_for(cls):
            if isinstance(handler, Route):
                return handler
        return None

    # -- messages ---------------------------------------------------------------

    def subject_for(self, recorded: RecordedEvent[Any], route: Route | None = None) -> str:
        """The subject ``recorded`` is published on."""
        route = route or self.route_for(type(recorded.event)) or Route()
        if route.subject is None:
            key = (recorded.stream_type, recorded.event_type)
            subject = self._subjects.get(key)
            if subject is None:
                subject = self._subjects[key] = default_subject(self.prefix, *key)
            return subject
        if isinstance(route.subject, str):
            return route.subject
        return check_subject(route.subject(recorded), what=f"relay {self.name!r}: subject")

    def message(self, recorded: RecordedEvent[Any]) -> OutgoingMessage | None:
        """The message ``recorded`` becomes, or ``None`` when it is not let out."""
        event: Any = recorded.event
        stored = type(event) is StoredPayload
        route = self.route_for(event.cls if stored else type(event))
        if route is None:
            return None
        kind, version = route.type or recorded.event_type, route.schema_version
        if stored:  # no mapping, no upcaster: the payload as stored (see cqrs.relay.decode)
            payload, version = event.text.encode(), version or recorded.schema_version
        elif route.mapper is None:  # the event as it is now (upcast), as JSON
            payload = to_json(self.codec.converter.unstructure(event))
            version = version or event.schema_version
        else:
            mapped = route.mapper(recorded)
            if mapped is None:
                return None
            if isinstance(mapped, IntegrationEvent):
                kind = mapped.type or kind
                version = version or mapped.schema_version
                mapped = mapped.data
            payload = to_json(dict(mapped))
        headers = {
            h.MSG_ID: str(recorded.event_id),
            h.TYPE: kind,
            h.SCHEMA_VERSION: str(version or 1),
            h.EVENT_TYPE: recorded.event_type,
            h.STREAM_ID: recorded.stream_id,
            h.STREAM_TYPE: recorded.stream_type,
            h.VERSION: str(recorded.version),
            h.POSITION: str(recorded.position),
            h.RECORDED_AT: recorded.recorded_at.isoformat(),
        }
        if recorded.correlation_id:
            headers[h.CORRELATION_ID] = recorded.correlation_id
        if recorded.causation_id:
            headers[h.CAUSATION_ID] = recorded.causation_id
        return OutgoingMessage(self.subject_for(recorded, route), payload, headers)

    # -- the batch handler ------------------------------------------------------

    def bind(self, publisher: JetStreamPublisher, codec: EventCodec | None = None) -> None:
        """Publish through ``publisher`` (the runner does this); ``codec`` encodes payloads."""
        self.publisher = publisher
        if codec is not None:
            self.codec = codec

    def apply(
        self,
        connection: Connection,
        events: Sequence[RecordedEvent[Event]],
        *,
        session: Session | None = None,
        table_map: Mapping[Table, Table] | None = None,
    ) -> int:
        """Publish the batch and return once JetStream acknowledged all of it.

        Raises what a mapping function raises (the failure policy handles it);
        a broker failure rolls the batch back without touching the policy.
        """
        if self.publisher is None:
            raise RelayError(
                f"relay {self.name!r} has no publisher: run it with RelayRunner "
                "(or `cqrs relay run`), not ProjectionRunner"
            )
        out = [m for m in (self.message(r) for r in events) if m is not None]
        try:
            acks = self.publisher.publish(out)
        except BrokerError as exc:
            raise BrokerDown(exc) from exc
        self.published += len(acks)
        self.duplicates += sum(1 for a in acks if a.duplicate)
        if self.repeat_possible and acks and events:
            self._check_window(acks[0].stream, events)
        return 0

    def _check_window(self, stream: str, events: Sequence[RecordedEvent[Event]]) -> None:
        """Report when this batch may repeat a publish older than the dedupe window."""
        assert self.publisher is not None
        try:
            window = self.publisher.duplicate_window(stream)
        except BrokerError:
            return
        oldest = min(r.recorded_at for r in events)
        age = (dt.datetime.now(dt.UTC) - oldest).total_seconds()
        if age > window:
            self.report = DedupeWindowTooShort(self.name, stream, age, window)
