"""The query side under asyncio: AsyncQueryBus, wait_for_async, and the typed refusal of an
async engine handed to a sync API (instead of SQLAlchemy's MissingGreenlet)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any, cast

import attrs
import pytest
import pytest_asyncio
from commands_domain import OrderPlaced, OrderShipped, PlaceOrder, ShipOrder, make_bus, schema_of
from sqlalchemy import Connection, Engine, MetaData, String, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cqrs import (
    AsyncQueryBus,
    E,
    Projection,
    ProjectionRunner,
    Query,
    QueryBus,
    QueryHandlers,
    wait_for,
    wait_for_async,
)
from cqrs.commands.asyncio import execute_async
from cqrs.errors import (
    AsyncBindError,
    ConfigurationError,
    QueryError,
    QueryHandlerNotFound,
    ReadModelTimeout,
)
from cqrs.projections import list_dead_letters, projection_status, rebuild


class Base(DeclarativeBase):
    pass


class OrderView(Base):
    __tablename__ = "aq_order_view"

    order_id: Mapped[str] = mapped_column(String, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)


view = Projection("aq_order_view", OrderView)
view.on(OrderPlaced).upsert(order_id=E.order_id, customer_id=E.customer_id, status="placed")
view.on(OrderShipped).update(key=E.order_id, status="shipped")


@attrs.frozen
class OrderStatus(Query[str | None]):
    order_id: str


@attrs.frozen
class OrderCount(Query[int]):
    pass


@attrs.frozen
class Vandal(Query[int]):
    pass


handlers = QueryHandlers()


@handlers.handles(OrderStatus)
def order_status(q: OrderStatus, session: Session) -> str | None:  # sync: both buses
    return session.scalar(select(OrderView.status).where(OrderView.order_id == q.order_id))


@handlers.handles(OrderCount)
async def order_count(q: OrderCount, session: AsyncSession) -> int:  # async: AsyncQueryBus
    return (await session.execute(select(func.count()).select_from(OrderView))).scalar_one()


@handlers.handles(Vandal)
async def vandal(q: Vandal, session: AsyncSession) -> int:
    await session.execute(text("DELETE FROM aq_order_view"))
    return 0


@pytest.fixture
def cqrs_metadata() -> Sequence[MetaData]:
    return [Base.metadata]


@pytest_asyncio.fixture
async def async_engine(cqrs_engine: Engine) -> AsyncIterator[AsyncEngine]:
    url, schema = schema_of(cqrs_engine)
    engine = create_async_engine(url, connect_args={"options": f"-csearch_path={schema},public"})
    try:
        yield engine
    finally:
        await engine.dispose()


def catch_up(engine: Engine) -> None:
    runner = ProjectionRunner(engine, [view], listen=False)
    try:
        runner.run_until_caught_up(timeout=60)
    finally:
        runner.close()


async def place(async_engine: AsyncEngine, order_id: str) -> str:
    """Place an order through the async command side; the position token of its event."""
    async with AsyncSession(async_engine) as session:
        outcome = await execute_async(make_bus(), PlaceOrder(order_id, "c-1", Decimal(2)), session)
    return str(outcome.recorded[-1].position)


@pytest.mark.asyncio
async def test_command_then_query_reads_its_write(
    async_engine: AsyncEngine, cqrs_engine: Engine
) -> None:
    queries = AsyncQueryBus(async_engine, handlers=handlers)
    token = await place(async_engine, "o-1")
    assert await queries.ask(OrderStatus("o-1")) is None  # the projection is behind
    asking = asyncio.create_task(
        queries.ask(OrderStatus("o-1"), after=token, wait_for=view, timeout=60)
    )
    await asyncio.sleep(0.05)
    assert not asking.done()  # waiting on the position, not answering from a stale view
    await asyncio.to_thread(catch_up, cqrs_engine)  # the runner, as a thread would
    assert await asking == "placed"

    async with AsyncSession(async_engine) as session:
        outcome = await execute_async(make_bus(), ShipOrder("o-1"), session)
    shipped = outcome.recorded[-1].position
    runner = asyncio.create_task(asyncio.to_thread(catch_up, cqrs_engine))
    assert await queries.ask(OrderStatus("o-1"), after=shipped, wait_for=view) == "shipped"
    assert await queries.ask(OrderCount()) == 1  # an async def handler, on its AsyncSession
    await runner


@pytest.mark.asyncio
async def test_a_waiting_query_does_not_block_others(
    async_engine: AsyncEngine, cqrs_engine: Engine
) -> None:
    queries = AsyncQueryBus(async_engine, handlers=handlers)
    await place(async_engine, "o-1")
    await asyncio.to_thread(catch_up, cqrs_engine)
    token = await place(async_engine, "o-2")  # the projection is behind this one

    waiting = asyncio.create_task(
        queries.ask(OrderStatus("o-2"), after=token, wait_for=view, timeout=60)
    )
    answers = await asyncio.gather(queries.ask(OrderStatus("o-1")), queries.ask(OrderCount()))
    assert answers == ["placed", 1]
    assert not waiting.done()  # the other queries completed while this one waits

    await asyncio.to_thread(catch_up, cqrs_engine)
    assert await waiting == "placed"


@pytest.mark.asyncio
async def test_the_wait_times_out(async_engine: AsyncEngine, cqrs_engine: Engine) -> None:
    queries = AsyncQueryBus(async_engine, handlers=handlers)
    token = await place(async_engine, "o-1")
    with pytest.raises(ReadModelTimeout, match="did not reach position"):
        await queries.ask(OrderStatus("o-1"), after=token, wait_for=view, timeout=0.2)
    with pytest.raises(ReadModelTimeout, match="aq_order_view"):
        await wait_for_async(async_engine, view, token, timeout=0.1)
    async with async_engine.connect() as conn:  # on the caller's connection too
        with pytest.raises(ReadModelTimeout):
            await wait_for_async(conn, "aq_order_view", token, timeout=0.1)
        await asyncio.to_thread(catch_up, cqrs_engine)
        await wait_for_async(conn, "aq_order_view", token, timeout=30)
    await wait_for_async(async_engine, view, token)


@pytest.mark.asyncio
async def test_a_sessionmaker_bound_to_a_connection_waits_on_it(
    async_engine: AsyncEngine, cqrs_engine: Engine
) -> None:
    token = await place(async_engine, "o-1")
    async with async_engine.connect() as conn:
        queries = AsyncQueryBus(async_sessionmaker(bind=conn), handlers=handlers)
        with pytest.raises(ReadModelTimeout):
            await queries.ask(OrderStatus("o-1"), after=token, wait_for=view, timeout=0.1)
        await asyncio.to_thread(catch_up, cqrs_engine)
        assert await queries.ask(OrderStatus("o-1"), after=token, wait_for=view) == "placed"


@pytest.mark.asyncio
async def test_answers_in_a_read_only_transaction(async_engine: AsyncEngine) -> None:
    queries = AsyncQueryBus(async_engine, handlers=handlers)
    with pytest.raises(DBAPIError, match="read-only transaction"):
        await queries.ask(Vandal())


@pytest.mark.asyncio
async def test_one_registry_serves_both_buses(
    async_engine: AsyncEngine, cqrs_engine: Engine
) -> None:
    await place(async_engine, "o-1")
    await asyncio.to_thread(catch_up, cqrs_engine)
    sync_bus = QueryBus(cqrs_engine, handlers=handlers)
    assert sync_bus.ask(OrderStatus("o-1")) == "placed"
    assert await AsyncQueryBus(async_engine, handlers=handlers).ask(OrderStatus("o-1")) == "placed"
    with pytest.raises(QueryError, match="AsyncQueryBus"):
        sync_bus.ask(OrderCount())  # an async def handler has no sync session to run on

    own = AsyncQueryBus(async_engine)  # a bus with its own registry, filled through it
    with pytest.raises(QueryHandlerNotFound, match="OrderStatus"):
        await own.ask(OrderStatus("o-1"))
    own.handles(OrderStatus)(order_status)
    assert await own.ask(OrderStatus("o-1")) == "placed"
    with pytest.raises(QueryError, match="already has a handler"):
        own.handles(OrderStatus)(order_status)


def _sync_apis(engine: Engine) -> dict[str, Callable[[], Any]]:
    """A call of each sync API on ``engine`` (an AsyncEngine's sync_engine in the test)."""
    return {
        "QueryBus": lambda: QueryBus(engine),
        "wait_for": lambda: wait_for(engine, view, "1:1", timeout=0.1),
        "projection_status": lambda: projection_status(engine),
        "ProjectionRunner": lambda: ProjectionRunner(engine, [view]),
        "rebuild": lambda: rebuild(engine, view),
        "list_dead_letters": lambda: list_dead_letters(engine),
        "CommandBus.dispatch": lambda: make_bus().dispatch(ShipOrder("o-1"), Session(engine)),
    }


@pytest.mark.parametrize("api", sorted(_sync_apis(cast(Engine, None))))
@pytest.mark.asyncio
async def test_a_sync_api_refuses_an_async_engine(async_engine: AsyncEngine, api: str) -> None:
    with pytest.raises(AsyncBindError, match=rf"{api} is a sync API .* sync_engine") as caught:
        _sync_apis(async_engine.sync_engine)[api]()
    assert caught.value.code == "cqrs-async-bind"
    assert "MissingGreenlet" in str(caught.value)


@pytest.mark.asyncio
async def test_async_objects_are_refused_and_run_sync_is_allowed(
    async_engine: AsyncEngine, cqrs_engine: Engine
) -> None:
    with pytest.raises(AsyncBindError, match=r"given an AsyncEngine.*AsyncQueryBus"):
        QueryBus(async_engine)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"cqrs\.QueryBus"):
        AsyncQueryBus(cqrs_engine)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"cqrs\.wait_for"):
        await wait_for_async(cqrs_engine, view, "1:1")  # type: ignore[arg-type]

    await place(async_engine, "o-1")
    await asyncio.to_thread(catch_up, cqrs_engine)
    async with async_engine.connect() as conn:  # inside the greenlet bridge: the sync APIs work

        def status_and_wait(sync_conn: Connection) -> list[str]:
            wait_for(sync_conn, view, "1:1", timeout=5)
            return [s.projection for s in projection_status(sync_conn)]

        assert await conn.run_sync(status_and_wait) == ["aq_order_view"]
