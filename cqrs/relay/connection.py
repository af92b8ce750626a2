"""Internal: the NATS connection the relay's publisher and the inbox open and close.

Both connect without nats-py's client-side reconnect (a batch is never
finished later with bytes buffered for a dead connection: the caller drops the
connection and opens a new one) and with its error callback turned into a
debug line (nats-py would log every failed attempt)::

    nc = loop.run(connect(url, name="cqrs-relay", timeout=2.0, options={}, logger=log))
    close(loop, nc, log)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import nats
from nats.aio.client import Client

from cqrs.redact import mask_url
from cqrs.relay.loop import LoopThread


async def connect(
    url: str, *, name: str, timeout: float, options: Mapping[str, Any], logger: logging.Logger
) -> Client:
    """A connection to ``url`` that does not reconnect by itself; ``options`` override."""

    async def quiet(exc: Exception) -> None:
        logger.debug("nats: %s", mask_url(str(exc)))

    settings: dict[str, Any] = {
        "servers": [url], "allow_reconnect": False, "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.1, "connect_timeout": timeout, "error_cb": quiet, "name": name,
    }  # fmt: skip
    settings.update(options)
    return await nats.connect(**settings)


def close(loop: LoopThread, nc: Client | None, logger: logging.Logger) -> None:
    """Close ``nc`` if it is open; a failure to close is only logged (at debug)."""
    if nc is not None and not nc.is_closed:
        try:
            loop.run(nc.close(), timeout=2.0)
        except Exception:
            logger.debug("closing the NATS connection failed", exc_info=True)
