"""Public: what the relay sends: headers, the integration event, the outgoing message.

Every message carries ``Nats-Msg-Id`` = the event id, so JetStream drops a
repeat within the stream's duplicate window, and these headers::

    Cqrs-Type              the integration event type (the stored type name by default)
    Cqrs-Schema-Version    its schema version
    Cqrs-Event-Type        the domain event's stored type name
    Cqrs-Stream-Id         the stream the event belongs to
    Cqrs-Stream-Type       the stream's type
    Cqrs-Version           the event's version in its stream
    Cqrs-Position          "<transaction id>:<global position>" in the log
    Cqrs-Correlation-Id    the correlation id (when the event has one)
    Cqrs-Causation-Id      the causation id (when the event has one)
    Cqrs-Recorded-At       ISO 8601 time of the append

The body is JSON: the mapped integration event's data, or the stored payload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

MSG_ID = "Nats-Msg-Id"
TYPE = "Cqrs-Type"
SCHEMA_VERSION = "Cqrs-Schema-Version"
EVENT_TYPE = "Cqrs-Event-Type"
STREAM_ID = "Cqrs-Stream-Id"
STREAM_TYPE = "Cqrs-Stream-Type"
VERSION = "Cqrs-Version"
POSITION = "Cqrs-Position"
CORRELATION_ID = "Cqrs-Correlation-Id"
CAUSATION_ID = "Cqrs-Causation-Id"
RECORDED_AT = "Cqrs-Recorded-At"


@attrs.frozen
class IntegrationEvent:
    """What a mapping function makes of a domain event: the shape other services see.

    ``type`` defaults to the domain event's stored type, ``schema_version``
    to 1; ``data`` must serialise to JSON::

        def order_placed(r: RecordedEvent[OrderPlaced]) -> IntegrationEvent:
            return IntegrationEvent({"order": r.event.order_id, "total": str(r.event.total)},
                                    type="orders.placed", schema_version=2)
    """

    data: Mapping[str, Any]
    type: str | None = None
    schema_version: int = 1


@attrs.frozen
class OutgoingMessage:
    """One message of a batch, ready for JetStream."""

    subject: str
    payload: bytes
    headers: Mapping[str, str]

    @property
    def msg_id(self) -> str:
        return self.headers[MSG_ID]


# One encoder for every message: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def to_json(data: Any) -> bytes:
    """Compact JSON, non-ASCII characters escaped (what the relay puts in a message body)."""
    return _ENCODER.encode(data).encode()
