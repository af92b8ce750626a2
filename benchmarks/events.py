"""Internal: the event the benchmark scenarios write, and its raw twin.

``Deposited`` has the field mix of a typical domain event (ids, a Decimal
amount, a timestamp). ``payload`` builds the JSON-ready dict the raw baseline
stores for the same values, so both sides write identical documents;
``fields`` gives the values to ``eventsourcing``'s aggregate (``benchmarks.es``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cqrs import Event, EventRegistry, EventStore, event

registry = EventRegistry()
EVENT_TYPE = "bench.deposited"
STAMP = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
AMOUNT = Decimal("12.50")


@event(EVENT_TYPE, registry=registry)
class Deposited(Event):
    account_id: str
    amount: Decimal
    currency: str
    reference: str
    at: datetime


@event("bench.noted", registry=registry)
class Noted(Event):
    """An event no benchmark projection handles."""

    n: int


def fields(account_id: str, n: int) -> tuple[str, Decimal, str, str, datetime]:
    """The ``n``-th deposit's field values, in ``Deposited``'s order."""
    return account_id, AMOUNT, "EUR", f"ref-{n}", STAMP


def deposited(account_id: str, n: int) -> Deposited:
    """The ``n``-th deposit of an account, as an event."""
    return Deposited(*fields(account_id, n))


def payload(account_id: str, n: int) -> tuple[str, dict[str, Any]]:
    """The same deposit as the raw side's ``(type, dict)``."""
    return EVENT_TYPE, {
        "account_id": account_id,
        "amount": str(AMOUNT),
        "currency": "EUR",
        "reference": f"ref-{n}",
        "at": STAMP.isoformat(),
    }


def payload_json(account_id: str, n: int) -> str:
    """The raw side's stored document for the ``n``-th deposit, as JSON text."""
    return json.dumps(payload(account_id, n)[1])


def make_store() -> EventStore:
    """An ``EventStore`` over the benchmark registry."""
    return EventStore(registry=registry)
