"""A sharded runner process for test_runner_crashes: 4 shards, small batches, short leases.

Run as ``python sharded_runner.py URL OWNER``; it runs until killed or SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading

from sqlalchemy import create_engine
from test_projection_models import build_summary, store

from cqrs.projections.runner import ProjectionRunner


def main(url: str, owner: str) -> None:
    engine = create_engine(url)
    runner = ProjectionRunner(
        engine, [build_summary(shards=4, batch_size=5)], store=store(),
        owner=owner, poll_interval=0.02, lease_ttl=1.0, upkeep_every=None,
    )  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner.run_forever(stop)
    runner.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
