"""Public: the analytics service: its tables, its commands, and the inbox that feeds them.

It shares no table with the shop: its own schema (in the demo; any database
in production) holds the toolkit's tables (``processed_commands`` makes a
redelivered message a no-op) and two of its own: ``order_facts``, one row
per order with its status, total and payment, and ``received_messages``,
one row per message handled (what the demo's cross-check reads)::

    inbox = build_inbox(engine, nats_url)
    inbox.run_until_idle()
"""

from __future__ import annotations

from decimal import Decimal

import attrs
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import sessionmaker

from cqrs import CommandBus, UnitOfWork
from cqrs.relay import Inbox, IncomingMessage
from examples.shop.relay import PREFIX, STREAM

metadata = MetaData()
order_facts = Table(
    "order_facts",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("items", Integer, nullable=False),
    Column("total", Numeric(12, 2), nullable=False),
    Column("paid", Numeric(12, 2), nullable=False, server_default="0"),
)
received_messages = Table(
    "received_messages",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("stream_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
)


@attrs.frozen
class RecordOrderActivity:
    """One order message: what happened to which order (the inbox builds it)."""

    message_id: str
    type: str
    stream_id: str
    version: int
    order_id: str
    customer_id: str | None = None
    items: int = 0
    total: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)


STATUS = {
    "shop.order.placed": "placed",
    "shop.order.paid": "paid",
    "shop.order.shipped": "shipped",
    "shop.order.delivered": "delivered",
    "shop.order.cancelled": "cancelled",
}


def build_bus() -> CommandBus:
    bus = CommandBus()

    @bus.handles(RecordOrderActivity)
    def record(cmd: RecordOrderActivity, uow: UnitOfWork) -> None:
        s = uow.session
        s.execute(
            received_messages.insert().values(
                message_id=cmd.message_id,
                type=cmd.type,
                stream_id=cmd.stream_id,
                version=cmd.version,
            )
        )
        status = STATUS[cmd.type]
        if cmd.type == "shop.order.placed":
            s.execute(
                insert(order_facts)
                .values(
                    order_id=cmd.order_id,
                    customer_id=cmd.customer_id or "",
                    status=status,
                    items=cmd.items,
                    total=cmd.total,
                )
                .on_conflict_do_nothing()
            )
            return
        values: dict[str, object] = {"status": status}
        if cmd.type == "shop.order.paid":
            values["paid"] = order_facts.c.paid + cmd.amount
        s.execute(
            update(order_facts).where(order_facts.c.order_id == cmd.order_id).values(**values)
        )

    return bus


def to_command(m: IncomingMessage) -> RecordOrderActivity:
    """An order message as the analytics command (the message id becomes its command id)."""
    data = m.data
    if m.stream_id is None or m.version is None:
        raise ValueError(f"message {m.id} lacks Cqrs-Stream-Id / Cqrs-Version headers")
    return RecordOrderActivity(
        message_id=m.id,
        type=m.type,
        stream_id=m.stream_id,
        version=m.version,
        order_id=data["order_id"],
        customer_id=data.get("customer_id"),
        items=int(data.get("items", 0)),
        total=Decimal(data.get("total", "0")),
        amount=Decimal(data.get("amount", "0")),
    )


def build_inbox(engine: Engine, nats_url: str, *, name: str = "analytics") -> Inbox:
    """The analytics inbox: every ``shop.order.*`` message, as ``RecordOrderActivity``."""
    inbox = Inbox(
        name,
        build_bus(),
        sessionmaker(engine),
        nats_url=nats_url,
        stream=STREAM,
        subject=f"{PREFIX}.order.>",
        dead_letter_subject=f"{name}.dead-letters",
    )
    for kind in STATUS:
        inbox.handles(kind)(to_command)
    return inbox
