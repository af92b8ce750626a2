"""``recorded_at`` in a UTC session: ``datetime.timezone.utc`` on every path of the store.

``cqrs.store.timestamps`` loads ``timestamptz`` without a conversion per value
when the session's zone is a name of UTC. These tests pin what that promises:
the same instant as a plain query gives; one ``tzinfo`` (``UTC``) whichever way
an event reaches the caller (append results, ``append_many``, ``read_stream``,
``read_all``, the runner's batch, dead-letter replay, the path through
``Connection.execute`` that event listeners force); the session's own zone as
soon as it is not UTC, also when it changes on a connection the store already
used; and a loader the application registered is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, event, text
from test_projection_models import OrderPlaced, OrderShipped, OrderSummary, store

from cqrs.events import RecordedEvent
from cqrs.projections.declarative import Projection, ProjectionContext
from cqrs.projections.runner import ProjectionRunner
from cqrs.store import StreamAppend, timestamps


def _zoned(engine: Engine, zone: str, **kwargs: Any) -> Engine:
    with engine.connect() as conn:
        path = conn.execute(text("SHOW search_path")).scalar_one()
    options = f"-csearch_path={path.replace(' ', '')} -ctimezone={zone}"
    return create_engine(engine.url, connect_args={"options": options}, **kwargs)


@pytest.fixture
def utc_engine(cqrs_engine: Engine) -> Iterator[Engine]:
    zoned = _zoned(cqrs_engine, "Etc/UTC")
    yield zoned
    zoned.dispose()


def _stored_at(engine: Engine, stream_id: str) -> list[datetime]:
    """``recorded_at`` as a plain SQLAlchemy query gives it (psycopg's own loader)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT recorded_at FROM events WHERE stream_id = :s ORDER BY version"),
                {"s": stream_id},
            ).scalars()
        )


def _placed(order: str) -> list[Any]:
    return [OrderPlaced(order, "c-1", Decimal("3.50")), OrderShipped(order)]


def test_every_path_of_a_utc_session_gives_timezone_utc(utc_engine: Engine) -> None:
    s = store()
    with utc_engine.begin() as conn:
        appended = s.append(conn, "order-u1", _placed("order-u1"))
        many = s.append_many(conn, [StreamAppend("order-u2", _placed("order-u2"))])
    plain = _stored_at(utc_engine, "order-u1")
    assert [a.tzinfo for a in plain] == [ZoneInfo("Etc/UTC")] * 2  # what psycopg gives
    with utc_engine.connect() as conn:
        stream = s.read_stream(conn, "order-u1")  # text results
        everything = s.read_all(conn, limit=1000)  # binary results
    seen: list[RecordedEvent[Any]] = []
    p = Projection("seen_utc", OrderSummary)

    @p.on(OrderPlaced, OrderShipped)
    def _(e: RecordedEvent[Any], ctx: ProjectionContext) -> None:
        seen.append(e)

    ProjectionRunner(utc_engine, [p], store=s, listen=False).run_until_caught_up()
    mine = [e for e in everything if e.stream_id in ("order-u1", "order-u2")]
    made = list(appended.recorded) + [e for r in many for e in r.recorded]
    caught = [e for e in seen if e.stream_id in ("order-u1", "order-u2")]
    assert len(mine) == len(made) == len(caught) == 4
    for group in (list(stream), mine, made, caught):
        assert all(e.recorded_at.tzinfo is UTC for e in group), group
    assert [e.recorded_at for e in stream] == plain  # the same instants
    assert mine == caught
    assert [e.recorded_at for e in mine[:2]] == [e.recorded_at for e in made[:2]] == plain


def test_event_listeners_take_the_other_path_and_give_the_same(cqrs_engine: Engine) -> None:
    """An engine with a listener runs the store's statements through
    ``Connection.execute`` (psycopg's loaders): the values are made the same."""
    zoned = _zoned(cqrs_engine, "Etc/UTC")
    statements: list[str] = []

    @event.listens_for(zoned, "before_cursor_execute")
    def _(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    try:
        with zoned.begin() as conn:
            appended = store().append(conn, "order-l1", _placed("order-l1"))
        with zoned.connect() as conn:
            read = store().read_stream(conn, "order-l1")
            everything = store().read_all(conn, limit=1000)
    finally:
        zoned.dispose()
    assert any("global_position" in s for s in statements)  # the listener saw them
    mine = [e for e in everything if e.stream_id == "order-l1"]
    for group in (list(appended.recorded), list(read), mine):
        assert [e.recorded_at.tzinfo for e in group] == [UTC, UTC], group
    assert list(read) == mine


def test_a_zone_set_later_on_the_connection_is_followed(utc_engine: Engine) -> None:
    """The store keeps one cursor per connection; a ``SET TIME ZONE`` after the
    store used it must still be honoured, both ways."""
    with utc_engine.begin() as conn:
        store().append(conn, "order-z1", _placed("order-z1"))
    with utc_engine.connect() as conn:
        first = store().read_stream(conn, "order-z1")
        conn.execute(text("SET TIME ZONE 'Asia/Kathmandu'"))
        nepal = store().read_all(conn, limit=1000)
        nepal_stream = store().read_stream(conn, "order-z1")
        conn.execute(text("SET TIME ZONE 'UTC'"))
        again = store().read_all(conn, limit=1000)
    assert [e.recorded_at.tzinfo for e in first] == [UTC, UTC]
    kathmandu = ZoneInfo("Asia/Kathmandu")
    assert {e.recorded_at.tzinfo for e in nepal} == {kathmandu}
    assert [e.recorded_at.tzinfo for e in nepal_stream] == [kathmandu] * 2
    assert {e.recorded_at.tzinfo for e in again} == {UTC}
    assert [e.recorded_at for e in first] == [e.recorded_at for e in nepal_stream]


def test_an_application_loader_is_left_alone(cqrs_engine: Engine) -> None:
    """A ``timestamptz`` loader the application registers on its connections wins."""
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class Marked(Loader):
        def load(self, data: Any) -> Any:
            return ("marked", bytes(data))

    class MarkedBinary(Marked):
        format = Format.BINARY

    zoned = _zoned(cqrs_engine, "Etc/UTC")

    @event.listens_for(zoned.pool, "connect")
    def _(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.adapters.register_loader("timestamptz", Marked)
        dbapi_connection.adapters.register_loader("timestamptz", MarkedBinary)

    try:
        with zoned.begin() as conn:
            store().append(conn, "order-a1", _placed("order-a1"))
        with zoned.connect() as conn:
            stream = store().read_stream(conn, "order-a1")
            everything = store().read_all(conn, limit=1000)
    finally:
        zoned.dispose()
    mine = [e for e in everything if e.stream_id == "order-a1"]
    for group in (list(stream), mine):
        assert [e.recorded_at[0] for e in group] == ["marked", "marked"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("zone", "utc"),
    [
        (b"UTC", True),
        (b"Etc/UTC", True),
        (b"Zulu", True),
        (b"GMT", False),
        (b"Europe/London", False),
    ],
)
def test_only_names_of_utc_count(zone: bytes, utc: bool) -> None:
    assert timestamps.is_utc(zone) is utc
    if utc:  # every name in the list is a zone whose clock and name are UTC
        z = ZoneInfo(zone.decode())
        for at in (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)):
            assert at.astimezone(z).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
            assert at.astimezone(z).tzname() == "UTC"


def test_every_listed_name_is_utc() -> None:
    for name in timestamps.UTC_NAMES:
        z = ZoneInfo(name.decode())
        for month in (1, 4, 7, 10):
            at = datetime(2026, month, 1, tzinfo=UTC).astimezone(z)
            assert (at.utcoffset(), at.tzname()) == (UTC.utcoffset(None), "UTC"), name
