"""Public: ``JetStreamPublisher``, a batch of messages out to JetStream, every ack awaited.

``publish(messages)`` sends the batch in order on one connection
(``publish_async`` for each, so the batch is pipelined) and returns only
when JetStream acknowledged every message; otherwise it raises a
:class:`~cqrs.errors.BrokerError` and closes the connection::

    publisher = JetStreamPublisher("nats://127.0.0.1:4222", stream="SHOP")
    acks = publisher.publish([OutgoingMessage("shop.order.placed", b"{}", {MSG_ID: "e-1"})])
    publisher.close()

Why order per stream survives failures: the connection is opened with
client-side reconnection off, so bytes buffered for a broken connection are
never sent later on a new one. TCP then delivers a prefix of the batch, the
server stores a prefix, and the retry (a whole new batch on a new
connection) has its stored prefix dropped as duplicates (``Nats-Msg-Id``)
and the rest appended in order. The first message after connecting is
published alone and awaited, so a batch never starts while the JetStream
stream is still recovering (which would store a suffix before its prefix).

The connection lives on a :class:`~cqrs.relay.loop.LoopThread`; callers are
sync and block on the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig

from cqrs.errors import (
    BrokerAuthFailed,
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    StreamMissing,
)
from cqrs.redact import mask_url
from cqrs.relay import connection
from cqrs.relay.loop import LoopThread
from cqrs.relay.messages import OutgoingMessage

log = logging.getLogger("cqrs.relay")

# JetStream API error codes that mean "no such stream" / "wrong stream".
_STREAM_CODES = {10059, 10060}


def broker_error(exc: BaseException, url: str, action: str) -> BrokerError:
    """The toolkit's one-line error for a nats-py failure while doing ``action``."""
    if isinstance(exc, BrokerError):
        return exc
    name = type(exc).__name__
    text = mask_url(str(exc).strip().splitlines()[0]) if str(exc).strip() else name
    url = mask_url(url)
    if isinstance(exc, nats.errors.AuthorizationError) or "authoriz" in text.lower():
        return BrokerAuthFailed(
            f"NATS at {url} refused the credentials while {action} ({text}); fix the user, "
            "token or credentials in the NATS URL / connect options"
        )
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return StreamMissing(
            f"no JetStream stream stores the subject while {action} (NATS at {url}); create "
            "one whose subjects cover the relay's (cqrs.relay.ensure_stream or `nats stream add`)"
        )
    if isinstance(exc, nats.js.errors.NotFoundError) or (
        isinstance(exc, nats.js.errors.APIError) and exc.err_code in _STREAM_CODES
    ):
        return StreamMissing(
            f"JetStream at {url} has no such stream while {action} ({text}); create it, or "
            "fix the stream name"
        )
    if isinstance(exc, nats.js.errors.APIError):
        return BrokerError(f"JetStream at {url} refused while {action}: {text}")
    return BrokerUnavailable(
        f"NATS at {url} is unreachable while {action} ({name}: {text}); start it or fix "
        "--nats-url / CQRS_NATS_URL; retrying with back-off"
    )


class JetStreamPublisher:
    """Publishes batches to JetStream at ``url`` and waits for every acknowledgement.

    ``stream`` (optional) makes JetStream refuse messages that would land in
    another stream (``Nats-Expected-Stream``). ``ack_timeout`` bounds the wait
    for a batch's acks, ``connect_timeout`` a connection attempt;
    ``connect_options`` go to ``nats.connect`` (user, token, credentials, TLS).
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str | None = None,
        ack_timeout: float = 10.0,
        connect_timeout: float = 2.0,
        connect_options: Mapping[str, Any] | None = None,
        name: str = "cqrs-relay",
    ) -> None:
        if not url:
            raise ConfigurationError("the NATS URL is empty; pass nats://host:4222")
        self.url = url
        self.stream = stream
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.connect_options = dict(connect_options or {})
        self.name = name
        self._loop: LoopThread | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._fresh = True
        self._windows: dict[str, float] = {}

    # -- connection -------------------------------------------------------------

    @property
    def loop(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread(f"{self.name}-nats")
        return self._loop

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def connect(self) -> JetStreamContext:
        """Open the connection if it is not open; raises :class:`BrokerError`."""
        if self._js is not None and self.connected:
            return self._js
        self._drop()
        try:
            self._nc = self.loop.run(self._connect(), timeout=self.connect_timeout * 3 + 1)
        except Exception as exc:
            raise broker_error(exc, self.url, "connecting") from exc
        self._js = self._nc.jetstream(timeout=self.ack_timeout)
        self._fresh = True
        return self._js

    async def _connect(self) -> Client:
        return await connection.connect(
            self.url, name=self.name, timeout=self.connect_timeout,
            options=self.connect_options, logger=log,
        )  # fmt: skip

    def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        connection.close(self.loop, nc, log)

    def close(self) -> None:
        """Close the connection and the loop thread."""
        self._drop()
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    # -- publishing -------------------------------------------------------------

    def publish(self, messages: Sequence[OutgoingMessage]) -> list[PubAck]:
        """Send ``messages`` in order; their acks once JetStream acknowledged them all."""
        if not messages:
            return []
        js = self.connect()
        try:
            acks = self.loop.run(self._publish(js, messages), timeout=self.ack_timeout * 2 + 1)
        except Exception as exc:
            self._drop()  # never reuse a connection a batch failed on
            raise broker_error(exc, self.url, f"publishing {len(messages)} messages") from exc
        self._fresh = False
        return acks

    async def _publish(
        self, js: JetStreamContext, messages: Sequence[OutgoingMessage]
    ) -> list[PubAck]:
        futures: list[asyncio.Future[PubAck]] = []
        rest = messages
        if self._fresh:  # the first message after connecting goes alone
            first = await self._send(js, messages[0])
            await asyncio.wait_for(asyncio.shield(first), self.ack_timeout)
            futures.append(first)
            rest = messages[1:]
        for message in rest:
            futures.append(await self._send(js, message))
        return list(await asyncio.wait_for(asyncio.gather(*futures), self.ack_timeout))

    async def _send(self, js: JetStreamContext, m: OutgoingMessage) -> asyncio.Future[PubAck]:
        # no wait_stall: with a timeout, nats-py makes a task per message to wait on its
        # semaphore (a batch never exceeds its 4000 pending publishes anyway)
        return await js.publish_async(m.subject, m.payload, headers=dict(m.headers),
                                      stream=self.stream)  # fmt: skip

    # -- streams ----------------------------------------------------------------

    def duplicate_window(self, stream: str) -> float:
        """The duplicate window of JetStream ``stream``, in seconds (cached)."""
        if stream not in self._windows:
            js = self.connect()
            try:
                info = self.loop.run(js.stream_info(stream), timeout=self.ack_timeout)
            except Exception as exc:
                raise broker_error(exc, self.url, f"reading stream {stream!r}") from exc
            self._windows[stream] = float(info.config.duplicate_window or 0.0)
        return self._windows[stream]

    def ensure_stream(
        self, name: str, subjects: Sequence[str], *, duplicate_window: float = 120.0, **config: Any
    ) -> None:
        """Create JetStream stream ``name`` storing ``subjects``, or update its subjects/window."""
        js = self.connect()
        wanted = StreamConfig(
            name=name, subjects=list(subjects), duplicate_window=duplicate_window, **config
        )
        try:
            self.loop.run(_ensure(js, wanted), timeout=self.ack_timeout * 2)
        except Exception as exc:
            raise broker_error(exc, self.url, f"creating stream {name!r}") from exc
        self._windows.pop(name, None)


async def _ensure(js: JetStreamContext, wanted: StreamConfig) -> None:
    try:
        info = await js.stream_info(wanted.name or "")
    except nats.js.errors.NotFoundError:
        await js.add_stream(wanted)
        return
    config = info.config
    subjects = sorted(set(config.subjects or []) | set(wanted.subjects or []))
    if subjects != sorted(config.subjects or []) or (
        config.duplicate_window != wanted.duplicate_window
    ):
        config.subjects = subjects
        config.duplicate_window = wanted.duplicate_window
        await js.update_stream(config)


def ensure_stream(
    url: str,
    name: str,
    subjects: Sequence[str],
    *,
    duplicate_window: float = 120.0,
    connect_options: Mapping[str, Any] | None = None,
    **config: Any,
) -> None:
    """Create (or widen) JetStream stream ``name`` at ``url`` for ``subjects``.

    >>> ensure_stream("nats://127.0.0.1:4222", "SHOP", ["shop.>"])   # needs a live NATS server
    ...     # doctest: +SKIP
    """
    publisher = JetStreamPublisher(url, connect_options=connect_options, name="cqrs-admin")
    try:
        publisher.ensure_stream(name, subjects, duplicate_window=duplicate_window, **config)
    finally:
        publisher.close()
