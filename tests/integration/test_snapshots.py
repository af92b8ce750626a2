"""Snapshots: written by policy, used on load, never a source of wrong state."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from commands_domain import (
    ItemAdded,
    Order,
    OrderNoted,
    OrderPlaced,
    OrderShipped,
    SnappedOrder,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cqrs import Event, Repository, SnapshotIgnored
from cqrs.aggregates import SnapshotStore
from cqrs.errors import SerializationError

skus = st.sampled_from(["a", "b", "c"])
# PostgreSQL jsonb cannot hold U+0000, UTF-8 no lone surrogate: the codec refuses both
texts = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8
)
events = st.one_of(
    st.builds(
        OrderPlaced,
        order_id=st.just("x"),
        customer_id=texts,
        total=st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False),
    ),
    st.builds(ItemAdded, order_id=st.just("x"), sku=skus, qty=st.integers(-5, 50)),
    st.builds(OrderShipped, order_id=st.just("x")),
    st.builds(OrderNoted, order_id=st.just("x"), note=texts),
)


def _save_in_chunks(engine: Engine, id: str, history: list[Event], sizes: list[int]) -> None:
    done, i = 0, 0
    while done < len(history):
        size = sizes[i % len(sizes)]
        i += 1
        with Session(engine) as session, session.begin():
            repo = Repository(SnappedOrder, session)
            order = repo.get(id) if done else repo.create(id)
            for e in history[done : done + size]:
                order.record(e)
            repo.save(order)
        done += size


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(events, min_size=1, max_size=14), sizes=st.lists(st.integers(1, 5), min_size=1)
)
def test_snapshot_plus_tail_equals_full_replay(
    cqrs_engine: Engine, history: list[Event], sizes: list[int]
) -> None:
    id = uuid.uuid4().hex[:10]
    _save_in_chunks(cqrs_engine, id, history, sizes)
    with Session(cqrs_engine) as session, session.begin():
        loaded = Repository(SnappedOrder, session).get(id)
        row = session.execute(
            text("SELECT version FROM snapshots WHERE stream_id = :s"), {"s": f"snappedorder-{id}"}
        ).scalar_one_or_none()
    replayed = SnappedOrder.from_events(id, history)
    assert loaded.state() == replayed.state()
    assert loaded.version == replayed.version == len(history)
    if len(history) >= 3:
        assert row is not None and row <= len(history) and row >= 3
    else:
        assert row is None


def _write_history(engine: Engine, id: str, n: int) -> None:
    with Session(engine) as session, session.begin():
        repo = Repository(SnappedOrder, session)
        order = repo.create(id)
        order.place("c-1", Decimal("2.50"))
        for i in range(n - 1):
            order.add_item("sku", i)
        repo.save(order)


def test_snapshot_is_written_by_policy_and_used_on_load(cqrs_engine: Engine) -> None:
    _write_history(cqrs_engine, "s-1", 4)
    with cqrs_engine.begin() as conn:
        snap = SnapshotStore().read(conn, "snappedorder-s-1")
        assert snap is not None and snap.version == 4 and snap.aggregate_type == "snappedorder"
        assert snap.state["total"] == "2.50"
        # prove the loader reads the snapshot: a (consistent) forged status shows through
        conn.execute(
            text("UPDATE snapshots SET state = jsonb_set(state, '{status}', '\"forged\"')")
        )
    with Session(cqrs_engine) as session, session.begin():
        order = Repository(SnappedOrder, session).get("s-1")
        assert order.status == "forged" and order.total == Decimal("2.50")
        order.add_item("sku", 1)
        Repository(SnappedOrder, session).save(order)
    with Session(cqrs_engine) as session, session.begin():
        assert Repository(SnappedOrder, session).get("s-1").items == {"sku": 0 + 1 + 2 + 1}


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("UPDATE snapshots SET schema_version = 99", "schema version is 99"),
        ("UPDATE snapshots SET aggregate_type = 'cart'", "aggregate type 'cart'"),
        ("UPDATE snapshots SET state = state - 'notes'", "differ from the class"),
        ("UPDATE snapshots SET state = jsonb_set(state, '{total}', '\"lots\"')", "structure"),
        ("UPDATE snapshots SET state = '[1, 2]'", "differ from the class"),
    ],
)
def test_unreadable_snapshot_is_ignored_with_a_warning(
    cqrs_engine: Engine, damage: str, reason: str
) -> None:
    _write_history(cqrs_engine, "s-2", 5)
    with cqrs_engine.begin() as conn:
        conn.execute(text(damage))
    with (
        Session(cqrs_engine) as session,
        session.begin(),
        pytest.warns(SnapshotIgnored, match=reason),
    ):
        order = Repository(SnappedOrder, session).get("s-2")
    assert order.version == 5 and order.total == Decimal("2.50")
    assert order.items == {"sku": 0 + 1 + 2 + 3} and order.status == "placed"


def test_snapshot_state_must_serialise(cqrs_engine: Engine) -> None:
    class Odd(SnappedOrder):
        aggregate_type = "odd"

    with Session(cqrs_engine) as session, session.begin():
        repo = Repository(Odd, session)
        odd = repo.create("o")
        odd.place("c", Decimal(1))
        odd.add_item("a", 1)
        odd.notes.append(object())  # type: ignore[arg-type]
        odd.add_item("b", 1)
        with pytest.raises(SerializationError, match="does not serialise"):
            repo.save(odd)


def test_snapshot_rows_are_json(cqrs_engine: Engine) -> None:
    _write_history(cqrs_engine, "s-3", 3)
    with cqrs_engine.connect() as conn:
        state = conn.execute(text("SELECT state::text FROM snapshots")).scalar_one()
    assert json.loads(state) == {
        "customer_id": "c-1",
        "items": {"sku": 1},
        "notes": [],
        "status": "placed",
        "total": "2.50",
    }


def test_plain_order_never_snapshots(cqrs_engine: Engine) -> None:
    with Session(cqrs_engine) as session, session.begin():
        repo = Repository(Order, session)
        order = repo.create("p-1")
        for i in range(10):
            order.add_item("a", i)
        repo.save(order)
        assert session.execute(text("SELECT count(*) FROM snapshots")).scalar_one() == 0
