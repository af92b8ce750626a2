"""Aggregates in memory: record, dispatch, versions, state, scenarios."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cqrs import Aggregate, Event, EventRegistry, applies, event
from cqrs.aggregates import snapshot_due
from cqrs.errors import AggregateError, UnhandledEvent
from cqrs.testing import AggregateScenario

registry = EventRegistry()


@event("unit.cart.opened", registry=registry)
class CartOpened(Event):
    owner: str


@event("unit.cart.item_added", registry=registry)
class ItemAdded(Event):
    sku: str
    price: Decimal


@event("unit.cart.checked_out", registry=registry)
class CheckedOut(Event):
    pass


@event("unit.cart.stray", registry=registry)
class Stray(Event):
    pass


class CartClosed(Exception):
    pass


class Cart(Aggregate):
    aggregate_type = "cart"

    owner: str = ""
    skus: list[str] = []  # noqa: RUF012 - copied per instance
    total: Decimal = Decimal(0)
    open: bool = False

    def add(self, sku: str, price: Decimal) -> None:
        if not self.open:
            raise CartClosed(f"cart {self.id} is not open")
        self.record(ItemAdded(sku=sku, price=price))

    def checkout(self) -> None:
        if not self.skus:
            raise CartClosed("nothing to check out")
        self.record(CheckedOut())

    @applies(CartOpened)
    def _opened(self, e: CartOpened) -> None:
        self.owner, self.open = e.owner, True

    @applies(ItemAdded)
    def _added(self, e: ItemAdded) -> None:
        self.skus.append(e.sku)
        self.total += e.price

    @applies(CheckedOut)
    def _checked_out(self, e: CheckedOut) -> None:
        self.open = False


class GiftCart(Cart):
    wrapped: bool = False

    @applies(CheckedOut)
    def _checked_out(self, e: CheckedOut) -> None:  # overrides the parent's handler
        self.open, self.wrapped = False, True


def test_record_applies_and_tracks_versions() -> None:
    cart = Cart.from_events("c-1", [CartOpened("ann")])
    assert (cart.version, cart.loaded_version, cart.pending_events) == (1, 1, ())
    cart.add("apple", Decimal("0.5"))
    cart.add("pear", Decimal("0.75"))
    assert cart.version == 3 and cart.loaded_version == 1
    assert cart.pending_events == (
        ItemAdded("apple", Decimal("0.5")),
        ItemAdded("pear", Decimal("0.75")),
    )
    assert cart.total == Decimal("1.25") and cart.stream_id == "cart-c-1"
    cart.mark_saved()
    assert cart.loaded_version == 3 and len(cart.pending_events) == 0


def test_mutable_defaults_are_per_instance() -> None:
    a = Cart.from_events("a", [CartOpened("x"), ItemAdded("s", Decimal(1))])
    b = Cart("b")
    assert a.skus == ["s"] and b.skus == [] and Cart.skus == []


def test_state_lists_public_attributes() -> None:
    cart = Cart.from_events("c", [CartOpened("ann")])
    assert cart.state() == {"open": True, "owner": "ann", "skus": [], "total": Decimal(0)}
    assert set(Cart.state_types()) == {"open", "owner", "skus", "total"}
    assert Cart.state_types()["total"] is Decimal


def test_unhandled_event_names_aggregate_and_event() -> None:
    cart = Cart("c")
    with pytest.raises(UnhandledEvent) as info:
        cart.record(Stray())
    message = str(info.value)
    assert "Cart ('cart')" in message and "'unit.cart.stray'" in message
    assert info.value.code == "cqrs-unhandled-event"
    assert cart.version == 0 and cart.pending_events == ()  # nothing recorded


def test_subclass_inherits_and_overrides_handlers() -> None:
    cart = GiftCart.from_events("g", [CartOpened("x"), ItemAdded("s", Decimal(1)), CheckedOut()])
    assert cart.wrapped and not cart.open and cart.skus == ["s"]
    assert GiftCart.aggregate_type == "giftcart"


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(AggregateError, match="without '-'"):

        class Bad(Aggregate):
            aggregate_type = "bad-name"

    with pytest.raises(AggregateError, match="snapshot_every"):

        class Bad2(Aggregate):
            snapshot_every = 0

    with pytest.raises(AggregateError, match="event class"):
        applies(str)  # type: ignore[type-var]


def test_snapshot_policy() -> None:
    class Every3(Aggregate):
        snapshot_every = 3

    assert [snapshot_due(Every3, v, v + 1) for v in range(7)] == [
        False, False, True, False, False, True, False,
    ]  # fmt: skip
    assert snapshot_due(Every3, 2, 9) and not snapshot_due(Cart, 0, 100)


def test_aggregate_scenario_then_events() -> None:
    scenario = AggregateScenario(Cart, "c-9").given(CartOpened("ann"))
    cart = scenario.when(lambda c: c.add("fig", Decimal(2))).then(ItemAdded("fig", Decimal(2)))
    assert cart.total == Decimal(2)


def test_aggregate_scenario_then_raises() -> None:
    err = (
        AggregateScenario(Cart)
        .when(lambda c: c.add("fig", Decimal(2)))
        .then_raises(CartClosed, match="not open")
    )
    assert isinstance(err, CartClosed)


def test_aggregate_scenario_reports_mismatches() -> None:
    scenario: AggregateScenario[Any] = AggregateScenario(Cart).given(CartOpened("a"))
    with pytest.raises(AssertionError, match="events differ"):
        scenario.when(lambda c: c.add("x", Decimal(1))).then(CheckedOut())
    with pytest.raises(AssertionError, match="nothing was raised"):
        scenario.when(lambda c: None).then_raises(CartClosed)
    with pytest.raises(AssertionError, match="expected KeyError, got CartClosed"):
        AggregateScenario(Cart).when(lambda c: c.checkout()).then_raises(KeyError)
    with pytest.raises(AssertionError, match="the action raised CartClosed"):
        AggregateScenario(Cart).when(lambda c: c.checkout()).then()
