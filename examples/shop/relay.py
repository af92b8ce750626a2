"""Public: the order events the shop lets out to other services, over NATS JetStream.

Five of the order stream's seven event types leave (stock reservations and
ready-to-ship are internal steps); placed and paid are mapped to integration
events that carry only what other services need, the rest go out as stored.
Payments, inventory, customers and shipments never leave::

    cqrs relay run --module examples.shop.relay:order_events --nats-url nats://127.0.0.1:4222
"""

from __future__ import annotations

from cqrs.events.model import RecordedEvent
from cqrs.relay import IntegrationEvent, Relay
from examples.shop.events import (
    OrderCancelled,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
)

STREAM = "CQRS_DEMO_SHOP"  # the JetStream stream; subjects shop.>
PREFIX = "shop"
SELECTED = (
    "shop.order.placed",
    "shop.order.paid",
    "shop.order.shipped",
    "shop.order.delivered",
    "shop.order.cancelled",
)

order_events = Relay("shop_order_events", prefix=PREFIX, stream=STREAM, batch_size=500)
order_events.select(OrderShipped, OrderDelivered, OrderCancelled)  # stored payloads


@order_events.maps(OrderPlaced, type="shop.order.placed", schema_version=1)
def _placed(r: RecordedEvent[OrderPlaced]) -> IntegrationEvent:
    e = r.event
    items = sum(line.quantity for line in e.lines)
    return IntegrationEvent(
        {
            "order_id": e.order_id,
            "customer_id": e.customer_id,
            "total": str(e.total),
            "items": items,
            "placed_at": e.placed_at.isoformat(),
        }
    )


@order_events.maps(OrderPaid, type="shop.order.paid", schema_version=1)
def _paid(r: RecordedEvent[OrderPaid]) -> IntegrationEvent:
    e = r.event
    return IntegrationEvent({"order_id": e.order_id, "amount": str(e.amount)})
