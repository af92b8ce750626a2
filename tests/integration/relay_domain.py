"""The relay tests' two services: an order log going out, a receipt table coming in.

Out: ``rl.order.placed`` and ``rl.order.paid`` are selected (paid through a
mapping function), ``rl.order.noted`` is not. In: an inbox turns each message
into ``RecordReceipt``, whose handler inserts one ``receipts`` row; a
redelivery is a no-op (the message id is the command id), so the table holds
exactly what the consumer received once each.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import attrs
from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, Table, Text, select, text
from sqlalchemy.orm import Session, sessionmaker

from cqrs import CommandBus, Event, EventRegistry, EventStore, UnitOfWork, event
from cqrs.events.model import RecordedEvent
from cqrs.relay import Inbox, IncomingMessage, IntegrationEvent, Relay, RetryPolicy

REG = EventRegistry()


@event("rl.order.placed", registry=REG)
class Placed(Event):
    order_id: str
    n: int


@event("rl.order.paid", registry=REG)
class Paid(Event):
    order_id: str
    n: int


@event("rl.order.noted", registry=REG)
class Noted(Event):
    order_id: str
    n: int


def store() -> EventStore:
    return EventStore(registry=REG)


def build_relay(prefix: str, stream: str, *, shards: int = 1, batch_size: int = 50) -> Relay:
    relay = Relay("rl_out", prefix=prefix, stream=stream, shards=shards,
                  batch_size=batch_size, registry=REG)  # fmt: skip
    relay.select(Placed)

    @relay.maps(Paid, type="rl.payment", schema_version=2)
    def _paid(r: RecordedEvent[Paid]) -> IntegrationEvent:
        return IntegrationEvent({"order": r.event.order_id, "n": r.event.n})

    return relay


def append_orders(engine: Engine, streams: int, rounds: int, *, start: int = 0) -> None:
    """``rounds`` rounds over ``streams`` streams: Placed, Noted, Paid per round."""
    s = store()
    for r in range(start, start + rounds):
        with engine.begin() as conn:
            for i in range(streams):
                sid = f"ord-{i}"
                s.append(conn, sid, [Placed(sid, r), Noted(sid, r), Paid(sid, r)],
                         stream_type="order")  # fmt: skip


# -- the receiving service ------------------------------------------------------

receipts_md = MetaData()
receipts = Table(
    "receipts", receipts_md,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("stream_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
)  # fmt: skip


@attrs.frozen
class RecordReceipt:
    message_id: str
    type: str
    stream_id: str
    version: int


class Poison(Exception):
    pass


def build_inbox(
    engine: Engine, url: str, stream: str, subject: str, *,
    poison: Callable[[IncomingMessage], bool] | None = None, retry: RetryPolicy | None = None,
) -> Inbox:  # fmt: skip
    bus = CommandBus(store=store())

    @bus.handles(RecordReceipt)
    def _record(cmd: RecordReceipt, uow: UnitOfWork) -> None:
        uow.session.execute(receipts.insert().values(
            message_id=cmd.message_id, type=cmd.type, stream_id=cmd.stream_id,
            version=cmd.version))  # fmt: skip

    inbox = Inbox(f"rl_in_{uuid.uuid4().hex[:6]}", bus, sessionmaker(engine), nats_url=url,
                  stream=stream, subject=subject, retry=retry or RetryPolicy(backoff=0.05),
                  dead_letter_subject=f"{subject.split('.')[0]}.dead")  # fmt: skip

    def receipt(m: IncomingMessage) -> RecordReceipt:
        if poison is not None and poison(m):
            raise Poison(f"poison {m.stream_id} v{m.version}")
        assert m.stream_id is not None and m.version is not None
        return RecordReceipt(m.id, m.type, m.stream_id, m.version)

    inbox.handles("rl.order.placed")(receipt)
    inbox.handles("rl.payment")(receipt)
    return inbox


def selected_events(engine: Engine) -> list[tuple[str, str, int]]:
    """(event id, stream id, version) of every selected event of the log, in log order."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT event_id::text, stream_id, version FROM events "
            "WHERE event_type IN ('rl.order.placed', 'rl.order.paid') "
            "ORDER BY transaction_id, global_position"))  # fmt: skip
        return [(r[0], r[1], r[2]) for r in rows]


def received(engine: Engine) -> list[tuple[str, str, int]]:
    with Session(engine) as session:
        rows = session.execute(
            select(receipts.c.message_id, receipts.c.stream_id, receipts.c.version).order_by(
                receipts.c.seq
            )
        )
        return [(r[0], r[1], r[2]) for r in rows]


def assert_exactly_once_in_order(engine: Engine) -> None:
    """Every selected event received once, per-stream in version order, nothing else."""
    want = selected_events(engine)
    got = received(engine)
    ids = [g[0] for g in got]
    assert len(ids) == len(set(ids)), "an event was received twice"
    assert set(ids) == {w[0] for w in want}, (len(ids), len(want))
    per_stream: dict[str, list[int]] = {}
    for _, sid, version in got:
        per_stream.setdefault(sid, []).append(version)
    for sid, versions in per_stream.items():
        assert versions == sorted(versions), f"stream {sid} out of order: {versions}"


def cli_relays() -> Relay:
    """For ``cqrs relay run --module relay_domain:cli_relays`` (prefix and stream from env)."""
    import os

    return build_relay(os.environ["RL_PREFIX"], os.environ["RL_STREAM"])
