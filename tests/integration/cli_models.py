"""Events and a projection for the CLI tests, imported by ``cqrs projections ... --module
cli_models:projections`` in a subprocess; it holds no tests itself."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs.events import Event, EventRegistry, RecordedEvent, event
from cqrs.projections.declarative import FailurePolicy, Projection, ProjectionContext
from cqrs.store.event_store import EventStore

REG = EventRegistry()
store = EventStore(registry=REG)


@event("cli.noted", registry=REG)
class Noted(Event):
    n: int
    poison: bool = False


class Base(DeclarativeBase):
    pass


class Tally(Base):
    __tablename__ = "cli_tally"

    stream_id: Mapped[str] = mapped_column(String, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


tally = Projection(
    "cli_tally", Tally, policy=FailurePolicy(retries=0, backoff=0.0, max_backoff=0.0), registry=REG
)


@tally.on(Noted)
def _noted(e: RecordedEvent[Noted], ctx: ProjectionContext) -> None:
    if e.event.poison:
        raise ValueError(f"poisoned event n={e.event.n}")
    ctx.upsert(Tally, stream_id=e.stream_id, last=e.event.n)


projections = [tally]
