"""Interleaved transactions against a model: whatever order transactions begin, write
their own rows, append with right and wrong expected versions, commit or roll back
in, ``read_all`` always yields each stream as a prefix of its versions, in order.

Hypothesis drives up to three open transactions on one thread (a write to a
transaction that is not open begins it). An append never
waits for another open transaction (the machine does not append to a stream
another open transaction has appended to), so each step returns at once; the model
predicts each append's outcome exactly, ``AppendOrderConflict`` included.
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import Connection, Engine, text

from cqrs import ANY, NO_STREAM, START, Event, EventRegistry, EventStore, event
from cqrs.errors import AppendOrderConflict, ConcurrencyError
from cqrs.store.guards import allow_rewrite

registry = EventRegistry()
STREAMS = ["m-a", "m-b"]
SLOTS = 2
ENGINE: list[Engine] = []
_OWN_XID = text("SELECT pg_current_xact_id_if_assigned()::text")


@event("machine.noted", registry=registry)
class Noted(Event):
    tag: str


@attrs.define
class Open:
    """One open transaction of the machine."""

    conn: Connection
    xid: int | None = None
    pending: dict[str, list[str]] = attrs.Factory(dict)
    locks: set[str] = attrs.Factory(set)  # streams whose locks it may hold

    def blocks(self, stream: str) -> bool:
        """Whether an append to ``stream`` elsewhere would wait for this transaction."""
        return stream in self.pending or stream in self.locks

    def refresh_xid(self) -> None:
        value = self.conn.execute(_OWN_XID).scalar()
        self.xid = None if value is None else int(value)


class Interleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = ENGINE[0]
        self.store = EventStore(registry=registry)
        with self.engine.begin() as conn:
            allow_rewrite(conn)  # the log is append-only (cqrs.store.guards)
            conn.execute(text("DELETE FROM events"))
            conn.execute(text("DELETE FROM streams"))
            conn.execute(text("DELETE FROM machine_own"))
        self.slots: list[Open | None] = [None] * SLOTS
        self.committed: dict[str, list[str]] = {s: [] for s in STREAMS}
        self.last_xid: dict[str, int] = {}
        self.tags = itertools.count()
        self.refusals = 0

    # -- rules -----------------------------------------------------------------

    def open(self, i: int) -> Open:
        """Transaction ``i``, begun now when it is not open (an implicit BEGIN)."""
        slot = self.slots[i]
        if slot is None:
            conn = self.engine.connect()
            conn.begin()
            slot = self.slots[i] = Open(conn)
        return slot

    @rule(i=st.integers(0, SLOTS - 1))
    def write_own_row(self, i: int) -> None:
        slot = self.open(i)
        slot.conn.execute(text("INSERT INTO machine_own VALUES (1)"))
        slot.refresh_xid()

    @rule(
        i=st.integers(0, SLOTS - 1),
        stream=st.sampled_from(STREAMS),
        mode=st.sampled_from(["exact", "exact", "wrong", "any"]),
        wrong_by=st.sampled_from([-1, 1]),
        own_row_first=st.booleans(),
    )
    def append(self, i: int, stream: str, mode: str, wrong_by: int, own_row_first: bool) -> None:
        if own_row_first:
            self.write_own_row(i)
        slot = self.open(i)
        if any(other is not None and other is not slot and other.blocks(stream)
               for other in self.slots):  # fmt: skip
            return  # it would wait for another open transaction on this thread
        # A first append takes the stream's advisory lock, and a refused ANY append
        # (ON CONFLICT DO UPDATE) still locks the row: either waits out others.
        slot.locks.add(stream)
        visible = len(self.committed[stream]) + len(slot.pending.get(stream, []))
        expected: Any = ANY
        if mode == "exact":
            expected = visible or NO_STREAM
        elif mode == "wrong":
            if visible + wrong_by < 0:
                return
            expected = visible + wrong_by
        newer = self.last_xid.get(stream)
        order_refused = (
            mode != "wrong"
            and visible > 0
            and stream not in slot.pending
            and slot.xid is not None
            and newer is not None
            and newer > slot.xid
        )
        tag = f"t{next(self.tags)}"
        try:
            self.store.append(slot.conn, stream, [Noted(tag)], expected_version=expected)
        except AppendOrderConflict:
            assert order_refused, (stream, slot.xid, newer)
            self.refusals += 1
        except ConcurrencyError as exc:
            assert mode == "wrong" and type(exc) is ConcurrencyError, (mode, exc)
        else:
            assert mode != "wrong" and not order_refused, (mode, slot.xid, newer)
            slot.pending.setdefault(stream, []).append(tag)
        slot.refresh_xid()

    @rule(stream=st.sampled_from(STREAMS))
    def append_and_commit_elsewhere(self, stream: str) -> None:
        """A short transaction of another writer: one append, committed at once."""
        if any(slot is not None and slot.blocks(stream) for slot in self.slots):
            return  # it would wait for that open transaction
        tag = f"t{next(self.tags)}"
        with self.engine.begin() as conn:
            self.store.append(conn, stream, [Noted(tag)], expected_version=ANY)
            xid = int(conn.execute(_OWN_XID).scalar_one())
        self.committed[stream].append(tag)
        self.last_xid[stream] = xid

    @rule(i=st.integers(0, SLOTS - 1))
    def commit(self, i: int) -> None:
        slot = self.slots[i]
        if slot is None:
            return
        slot.conn.commit()
        slot.conn.close()
        self.slots[i] = None
        for stream, tags in slot.pending.items():
            self.committed[stream].extend(tags)
            assert slot.xid is not None
            self.last_xid[stream] = slot.xid

    @rule(i=st.integers(0, SLOTS - 1))
    def roll_back(self, i: int) -> None:
        slot = self.slots[i]
        if slot is not None:
            slot.conn.rollback()
            slot.conn.close()
            self.slots[i] = None

    # -- what must always hold ---------------------------------------------------

    def read_log(self) -> dict[str, list[tuple[int, str]]]:
        seen: dict[str, list[tuple[int, str]]] = {s: [] for s in STREAMS}
        with self.engine.connect() as conn:
            after = START
            while page := self.store.read_all(conn, after=after, limit=7):
                for e in page:
                    seen[e.stream_id].append((e.version, e.event.tag))  # type: ignore[attr-defined]
                after = page[-1].position
        return seen

    @invariant()
    def each_stream_is_read_as_a_prefix_in_version_order(self) -> None:
        for stream, read in self.read_log().items():
            assert [v for v, _ in read] == list(range(1, len(read) + 1)), (stream, read)
            assert [t for _, t in read] == self.committed[stream][: len(read)], stream

    def teardown(self) -> None:
        for i in range(SLOTS):
            self.roll_back(i)
        read = self.read_log()
        assert {s: [t for _, t in r] for s, r in read.items()} == self.committed


def test_interleaved_transactions_read_in_version_order(log_engine: Engine) -> None:
    with log_engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS machine_own (n int)"))
    ENGINE[:] = [log_engine]
    run_state_machine_as_test(
        Interleavings,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


@pytest.fixture(autouse=True)
def _lock_timeout(log_engine: Engine) -> None:
    """Guard: a bug that made one step wait for another transaction fails, not hangs."""
    from sqlalchemy import event as sa_event

    @sa_event.listens_for(log_engine, "connect")
    def _set(dbapi_conn: Any, _: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET lock_timeout = '5s'")
