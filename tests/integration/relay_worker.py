"""A relay process for test_relay_crashes: ``python relay_worker.py DB_URL NATS_URL PREFIX STREAM
SHARDS OWNER``; runs until killed or SIGTERM."""

from __future__ import annotations

import signal
import threading

STOP = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: STOP.set())  # before the slow imports

import logging  # noqa: E402
import sys  # noqa: E402

from relay_domain import build_relay, store  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from cqrs.relay import RelayRunner  # noqa: E402


def main(db: str, nats_url: str, prefix: str, stream: str, shards: str, owner: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    relay = build_relay(prefix, stream, shards=int(shards), batch_size=7)
    runner = RelayRunner(
        create_engine(db), [relay], nats_url=nats_url, store=store(), owner=owner,
        poll_interval=0.02, lease_ttl=1.0, ack_timeout=3.0, max_backoff=0.5,
    )  # fmt: skip
    runner.run_forever(STOP)


if __name__ == "__main__":
    main(*sys.argv[1:7])
