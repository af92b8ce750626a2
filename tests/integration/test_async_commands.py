"""The command side under asyncio: AsyncSession with psycopg's async driver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio
from commands_domain import (
    Counter,
    Increment,
    Incremented,
    Order,
    OrderError,
    PlaceOrder,
    PlaceTwoThenFail,
    Receipt,
    ShipOrder,
    make_bus,
    schema_of,
)
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from cqrs import CommandBus, EventStore, RetryOnConflict, UnitOfWork
from cqrs.commands.asyncio import dispatch_async, execute_async, load_async
from cqrs.errors import InvalidInput


@pytest_asyncio.fixture
async def async_engine(cqrs_engine: Engine) -> AsyncIterator[AsyncEngine]:
    url, schema = schema_of(cqrs_engine)
    assert url.startswith("postgresql+psycopg://")
    engine = create_async_engine(url, connect_args={"options": f"-csearch_path={schema},public"})
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_dispatch_and_load_under_asyncio(async_engine: AsyncEngine) -> None:
    bus = make_bus()
    async with AsyncSession(async_engine) as session:
        receipt = await dispatch_async(bus, PlaceOrder("a-1", "c-1", Decimal("3.5")), session)
        assert receipt == Receipt("a-1", Decimal("3.5"))
        await dispatch_async(bus, ShipOrder("a-1"), session)
        order = await load_async(session, Order, "a-1")
    assert isinstance(order, Order)
    assert (order.status, order.total, order.version) == ("shipped", Decimal("3.5"), 2)
    assert asyncio.get_running_loop().is_running()


@pytest.mark.asyncio
async def test_idempotent_replay_under_asyncio(async_engine: AsyncEngine) -> None:
    bus = make_bus()
    command = PlaceOrder("a-2", "c-1", Decimal(1), command_id="async-cmd")
    async with AsyncSession(async_engine) as session:
        first = await execute_async(bus, command, session)
        again = await execute_async(bus, command, session)
        count = (await session.execute(text("SELECT count(*) FROM events"))).scalar_one()
    assert first.result == again.result and again.replayed and again.recorded == ()
    assert count == 1


@pytest.mark.asyncio
async def test_failure_writes_nothing_under_asyncio(async_engine: AsyncEngine) -> None:
    bus = make_bus()
    async with AsyncSession(async_engine) as session:
        with pytest.raises(OrderError):
            await dispatch_async(bus, PlaceTwoThenFail("a-3", "k-3"), session)
        streams = (await session.execute(text("SELECT count(*) FROM streams"))).scalar_one()
    assert streams == 0


@pytest.mark.asyncio
async def test_sync_dispatch_refuses_an_async_session(async_engine: AsyncEngine) -> None:
    async with AsyncSession(async_engine) as session:
        with pytest.raises(InvalidInput, match="dispatch_async"):
            make_bus().dispatch(ShipOrder("x"), session)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_conflict_retry_waits_without_blocking_the_loop(
    async_engine: AsyncEngine, cqrs_engine: Engine
) -> None:
    bus = CommandBus(middleware=[RetryOnConflict(attempts=3, base_delay=0.05)])
    runs = 0

    @bus.handles(Increment)
    def increment(cmd: Increment, uow: UnitOfWork) -> int:
        nonlocal runs
        runs += 1
        counters = uow.repository(Counter)
        counter = counters.get_or_none(cmd.counter_id) or counters.create(cmd.counter_id)
        if runs == 1:  # another writer creates the stream first
            with Session(cqrs_engine) as other, other.begin():
                EventStore().append(other, counter.stream_id, [Incremented(10)])
        counter.increment(cmd.by)
        return counter.version

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    background = asyncio.create_task(ticker())
    try:
        async with AsyncSession(async_engine) as session:
            outcome = await execute_async(bus, Increment("k-4"), session)
    finally:
        background.cancel()
    assert outcome.attempts == 2 and outcome.result == 2
    assert ticks > 0  # the loop kept running while the command was in flight


@pytest.mark.asyncio
async def test_concurrent_tasks_on_one_aggregate(async_engine: AsyncEngine) -> None:
    bus = make_bus(middleware=[RetryOnConflict(attempts=12, base_delay=0.002)])
    async with AsyncSession(async_engine) as session:
        await dispatch_async(bus, Increment("k-5"), session)

    async def one() -> int:
        async with AsyncSession(async_engine) as session:
            result: int = await dispatch_async(bus, Increment("k-5"), session)
            return result

    versions = await asyncio.gather(*(one() for _ in range(5)))
    assert sorted(versions) == [2, 3, 4, 5, 6]
    async with AsyncSession(async_engine) as session:
        counter = await load_async(session, Counter, "k-5")
    assert counter.count == 6
