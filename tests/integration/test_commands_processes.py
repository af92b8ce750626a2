"""Two processes update one aggregate at once: one conflicts, the bus retries it."""

from __future__ import annotations

import multiprocessing
import queue

from commands_domain import Counter, Increment, make_bus, racing_increment, schema_of
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cqrs import EventStore, Repository


def test_two_processes_both_succeed_after_retry(cqrs_engine: Engine) -> None:
    with Session(cqrs_engine) as session:
        make_bus().dispatch(Increment("shared", by=10), session)  # version 1
    url, schema = schema_of(cqrs_engine)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=racing_increment, args=(url, schema, "shared", barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=120) for _ in workers]
    except queue.Empty:
        raise AssertionError("a worker process did not report within 120 s") from None
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    assert all(o[0] != "error" for o in outcomes), outcomes
    # both loaded version 1 before either appended: one went through, one was retried
    assert sorted(outcomes) == [(2, 1), (3, 2)]
    with Session(cqrs_engine) as session, session.begin():
        stored = EventStore().read_stream(session, "counter-shared")
        counter = Repository(Counter, session).get("shared")
    assert [r.version for r in stored] == [1, 2, 3]
    assert counter.count == 12 and counter.version == 3
