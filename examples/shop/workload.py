"""Public: a realistic burst of shop traffic, and the workers that drive it through the bus.

``Workload.generate(orders=1000)`` plans everything up front from a seed (so
two runs send the same commands): a catalogue, customers (a few of them
deactivated), orders spread over the last week, payment provider callbacks
(about 4 % failures, about 10 % sent twice), restocking now and then, and a
few orders from deactivated customers that the rules must refuse.
``drive`` sends the orders from several threads; ``Carriers`` play the carriers
that dispatch and deliver the parcels as shipments appear::

    >>> plan = Workload.generate(orders=50, seed=7)
    >>> len(plan.orders), plan.orders[0].place.order_id
    (50, 'o-00000')
"""

from __future__ import annotations

import queue
import random
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cqrs import CommandBus
from cqrs.errors import ConcurrencyError
from cqrs.queries import QueryBus
from examples.shop.commands import (
    AddProduct,
    DeactivateCustomer,
    DeliverShipment,
    DispatchShipment,
    HandlePaymentCallback,
    OrderLine,
    PlaceOrder,
    ReceiveStock,
    RegisterCustomer,
)
from examples.shop.errors import ShopError
from examples.shop.queries import ShipmentsByStatus

CITIES = ("Leeds", "Lyon", "Porto", "Graz", "Turku", "Gdansk", "Bilbao", "Utrecht")
WORDS = ("lamp", "mug", "chair", "kettle", "scarf", "atlas", "pen", "clock", "rug", "vase")
SIM_END = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
"""The simulated present: orders fall in the week before it."""

Progress = Callable[[int], None]


@attrs.frozen
class OrderPlan:
    """One customer order and what the payment provider will send about it."""

    place: PlaceOrder
    callbacks: tuple[HandlePaymentCallback, ...]
    restock: ReceiveStock | None = None


@attrs.frozen
class Workload:
    """Everything a burst sends, planned from a seed."""

    products: tuple[AddProduct, ...]
    customers: tuple[RegisterCustomer, ...]
    deactivations: tuple[DeactivateCustomer, ...]
    orders: tuple[OrderPlan, ...]

    @classmethod
    def generate(
        cls,
        orders: int = 1000,
        *,
        seed: int = 42,
        products: int = 40,
        customers: int | None = None,
        fail_rate: float = 0.04,
        duplicate_rate: float = 0.10,
    ) -> Workload:
        rng = random.Random(seed)
        n_customers = customers or max(10, orders // 6)
        catalogue = tuple(
            AddProduct(
                f"sku-{i:03d}",
                f"{rng.choice(WORDS)} {i}",
                Decimal(rng.randrange(300, 9000)) / 100,
                # a few products are scarce and sell out: later orders for them are refused
                orders // 20 + 3 if i % 13 == 0 else orders * 2,
            )
            for i in range(products)
        )
        people = tuple(
            RegisterCustomer(f"c-{i:05d}", f"Customer {i}", f"c{i}@example.org", rng.choice(CITIES))
            for i in range(n_customers)
        )
        gone = tuple(
            DeactivateCustomer(c.customer_id, "closed the account")
            for c in people[:: max(2, n_customers // 4)][:4]
        )
        gone_ids = {d.customer_id for d in gone}
        active = [c.customer_id for c in people if c.customer_id not in gone_ids]
        plans = []
        for i in range(orders):
            order_id = f"o-{i:05d}"
            # about 1 % of the attempts come from a deactivated customer: refused
            who = rng.choice(sorted(gone_ids)) if gone_ids and i % 97 == 13 else rng.choice(active)
            picked = rng.sample(catalogue, rng.choice((1, 1, 2, 2, 3)))
            lines = tuple(
                OrderLine(p.sku, rng.choice((1, 1, 1, 2, 3)), p.unit_price) for p in picked
            )
            placed_at = SIM_END - timedelta(minutes=rng.randrange(0, 7 * 24 * 60))
            place = PlaceOrder(order_id, who, lines, placed_at)
            total = sum((line.amount for line in lines), Decimal(0))
            paid_at = placed_at + timedelta(minutes=rng.randrange(1, 30))
            ref = f"psp-{rng.getrandbits(40):010x}"
            if rng.random() < fail_rate:
                first = HandlePaymentCallback(
                    place.payment_id, ref, False, total, paid_at, "card declined"
                )
            else:
                first = HandlePaymentCallback(place.payment_id, ref, True, total, paid_at)
            callbacks = (first, first) if rng.random() < duplicate_rate else (first,)
            restock = None
            if i % 150 == 149:
                restock = ReceiveStock(rng.choice(catalogue).sku, rng.randrange(5, 40))
            plans.append(OrderPlan(place, callbacks, restock))
        return cls(catalogue, people, gone, tuple(plans))

    @property
    def command_count(self) -> int:
        return sum(1 + len(p.callbacks) + (p.restock is not None) for p in self.orders)


@attrs.define
class BurstResult:
    """What a burst did: commands sent, refused by a rule, retried on conflicts."""

    orders_placed: int = 0
    orders_refused: int = 0
    callbacks: int = 0
    duplicate_callbacks: int = 0
    restocks: int = 0
    commands: int = 0
    conflicts: int = 0
    errors: list[str] = attrs.Factory(list)
    seconds: float = 0.0
    lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


def setup(engine: Engine, bus: CommandBus, plan: Workload) -> int:
    """Create the catalogue and the customers (one transaction each); answer the commands."""
    sent = 0
    with Session(engine) as session:
        for command in (*plan.products, *plan.customers, *plan.deactivations):
            bus.dispatch(command, session)
            sent += 1
    return sent


def _send(bus: CommandBus, session: Session, command: object, result: BurstResult) -> Any:
    outcome = bus.execute(command, session)
    if outcome.attempts > 1:
        result.add(conflicts=outcome.attempts - 1)
    return outcome.result


def drive(
    engine: Engine,
    bus: CommandBus,
    plan: Workload,
    *,
    workers: int = 4,
    progress: Progress | None = None,
) -> BurstResult:
    """Send every planned order from ``workers`` threads; ``progress(n)`` after each order."""
    result = BurstResult()
    orders: Sequence[OrderPlan] = plan.orders

    def work(offset: int) -> None:
        with Session(engine) as session:
            for order in orders[offset::workers]:
                sent = 1
                try:
                    _send(bus, session, order.place, result)
                except ShopError:
                    result.add(orders_refused=1, commands=1)
                    if progress:
                        progress(1)
                    continue
                except Exception as exc:  # keep going; the report shows what failed
                    result.errors.append(f"{order.place.order_id}: {type(exc).__name__}: {exc}")
                    continue
                result.add(orders_placed=1)
                for i, callback in enumerate(order.callbacks):
                    changed = _send(bus, session, callback, result)
                    sent += 1
                    result.add(callbacks=1, duplicate_callbacks=int(i > 0 and not changed))
                if order.restock is not None:
                    _send(bus, session, order.restock, result)
                    result.add(restocks=1)
                    sent += 1
                result.add(commands=sent)
                if progress:
                    progress(1)

    started = time.perf_counter()
    threads = [
        threading.Thread(target=work, args=(n,), name=f"shop-worker-{n}") for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


@attrs.define
class CarrierResult:
    dispatched: int = 0
    delivered: int = 0
    seconds: float = 0.0
    errors: list[str] = attrs.Factory(list)


class Carriers:
    """The carriers: they pick up parcels as shipments appear in the read model, dispatch
    them and deliver ``deliver_share`` of them, from ``workers`` threads.

    ``start()`` begins polling ``ShipmentsByStatus("created")``; ``finish()`` (call it once
    the projections have caught up) takes the last parcels, waits for the threads and
    answers what was done.
    """

    def __init__(
        self,
        engine: Engine,
        bus: CommandBus,
        queries: QueryBus,
        *,
        workers: int = 2,
        deliver_share: float = 0.9,
        poll: float = 0.3,
        progress: Progress | None = None,
    ) -> None:
        self.engine, self.bus, self.queries = engine, bus, queries
        self.workers, self.deliver_share, self.poll = workers, deliver_share, poll
        self.progress = progress
        self.result = CarrierResult()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def start(self) -> Carriers:
        self._started = time.perf_counter()
        self._threads = [
            threading.Thread(target=self._poll, name="shop-carriers-poll", daemon=True)
        ]
        self._threads += [
            threading.Thread(target=self._work, name=f"shop-carrier-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def finish(self) -> CarrierResult:
        self._closing.set()
        for thread in self._threads:
            thread.join()
        self.result.seconds = time.perf_counter() - self._started
        return self.result

    def _poll(self) -> None:
        seen: set[str] = set()
        try:
            while True:
                closing = self._closing.is_set()  # read first: the fetch below is the last
                for shipment_id in self.queries.ask(ShipmentsByStatus("created", limit=100_000)):
                    if shipment_id not in seen:
                        seen.add(shipment_id)
                        self._queue.put(shipment_id)
                if closing:
                    break
                self._closing.wait(self.poll)
        except Exception as exc:  # reported, and the workers still stop
            with self._lock:
                self.result.errors.append(f"carriers stopped polling: {type(exc).__name__}: {exc}")
        finally:
            for _ in range(self.workers):
                self._queue.put(None)

    def _work(self) -> None:
        at = SIM_END + timedelta(hours=2)
        with Session(self.engine) as session:
            while (shipment_id := self._queue.get()) is not None:
                checksum = zlib.crc32(shipment_id.encode())
                deliver = checksum % 100 < self.deliver_share * 100
                try:
                    self.bus.dispatch(
                        DispatchShipment(shipment_id, f"TRK{checksum:010d}", at), session
                    )
                    if deliver:
                        self.bus.dispatch(
                            DeliverShipment(shipment_id, at + timedelta(days=1)), session
                        )
                except (ConcurrencyError, ShopError) as exc:
                    with self._lock:
                        self.result.errors.append(f"{shipment_id}: {type(exc).__name__}: {exc}")
                    continue
                with self._lock:
                    self.result.dispatched += 1
                    self.result.delivered += int(deliver)
                if self.progress:
                    self.progress(1)
