"""Public: ``Inbox``, integration events in from JetStream, each as one command.

An inbox reads a durable JetStream pull consumer and turns each message into
a command (a function per message type), dispatched through the
``CommandBus`` with the message id (``Nats-Msg-Id``, the publisher's event id)
as the command id: a redelivered message is a no-op (``processed_commands``
answers the first result). A message is acknowledged only after its
command's transaction committed, so a crash in between redelivers it and
nothing is lost::

    inbox = Inbox("analytics", bus, sessions, nats_url=url, stream="SHOP",
                  subject="shop.order.>", dead_letter_subject="analytics.dead")

    @inbox.handles("shop.order.placed")
    def _placed(m: IncomingMessage) -> RecordSale:
        return RecordSale(m.data["order_id"], Decimal(m.data["total"]))

    inbox.run_forever(stop)

Failures: a command that raises is retried with back-off (``RetryPolicy``)
while the messages of *other* streams go on; the later messages of the same
stream (``Cqrs-Stream-Id``) wait behind it, so per-stream order holds. After
the last retry the message goes to ``dead_letter_subject`` (headers kept,
``Cqrs-Error`` added) and is acknowledged; its stream goes on. A message with
no handler for its type, or a body that is not JSON, goes there at once. A
lost database connection is retried with back-off and never counts as a
failure: an outage dead-letters nothing.
Broker failures are one-line warnings and a reconnect with back-off.

The NATS connection lives on the inbox's own event-loop thread
(:class:`~cqrs.relay.loop.LoopThread`); commands run on the caller's thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.orm import Session

from cqrs.backoff import delay as backoff_delay
from cqrs.commands.bus import CommandBus
from cqrs.errors import BrokerError, InboxError
from cqrs.errortext import clip, describe
from cqrs.projections.runner import is_transient
from cqrs.relay import connection
from cqrs.relay import messages as h
from cqrs.relay.loop import LoopThread
from cqrs.relay.publisher import broker_error
from cqrs.relay.subjects import check_subject

log = logging.getLogger("cqrs.relay.inbox")
ERROR = "Cqrs-Error"
ORIGINAL_SUBJECT = "Cqrs-Original-Subject"
INBOX = "Cqrs-Inbox"
HEADER_LIMIT = 2000
"""Characters of error text the dead-letter header keeps (one line)."""


@attrs.frozen
class RetryPolicy:
    """Retry a failing message ``retries`` times, ``backoff`` s doubled up to ``max_backoff``."""

    retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 10.0

    def delay(self, failures: int) -> float:
        return backoff_delay(failures, self.backoff, self.max_backoff)


@attrs.frozen
class IncomingMessage:
    """A message as the inbox's handlers see it: id, type, decoded JSON data, headers."""

    id: str
    type: str
    subject: str
    data: Any
    headers: Mapping[str, str]
    sequence: int  # the JetStream stream sequence
    deliveries: int  # 1 the first time, more on redeliveries

    @property
    def stream_id(self) -> str | None:
        return self.headers.get(h.STREAM_ID)

    @property
    def version(self) -> int | None:
        value = self.headers.get(h.VERSION)
        return None if value is None else int(value)

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get(h.CORRELATION_ID)


MessageHandler = Callable[[IncomingMessage], object]


@attrs.define
class _Held:
    msg: Msg
    failures: int
    due: float
    touched: float


class Inbox:
    """Dispatches the messages of a durable JetStream consumer as commands on ``bus``.

    ``sessions`` makes a ``Session`` per message (a ``sessionmaker``);
    ``stream`` is the JetStream stream, ``subject`` the consumer's filter
    (wildcards allowed), ``durable`` the consumer's name (default: ``name``).
    ``dead_letter_subject`` (default ``"<name>.dead-letters"``) should be
    stored by a JetStream stream that the inbox does not read. The command id
    is the message id; ``command_id_prefix`` sets two inboxes of one database
    that consume the same messages apart (``processed_commands`` is shared).
    """

    def __init__(
        self,
        name: str,
        bus: CommandBus,
        sessions: Callable[[], Session],
        *,
        nats_url: str,
        stream: str,
        subject: str,
        durable: str | None = None,
        dead_letter_subject: str | None = None,
        retry: RetryPolicy | None = None,
        batch: int = 100,
        ack_wait: float = 30.0,
        connect_options: Mapping[str, Any] | None = None,
        command_id_prefix: str = "",
    ) -> None:
        if not name or "." in name or " " in name:
            raise InboxError(f"inbox name must be a non-empty token without dots: {name!r}")
        self.name = name
        self.bus = bus
        self.sessions = sessions
        self.url = nats_url
        self.stream = stream
        self.subject = subject
        self.durable = durable or name
        self.dead_letter_subject = check_subject(
            dead_letter_subject or f"{name}.dead-letters", what="dead_letter_subject"
        )
        self.retry = retry or RetryPolicy()
        self.batch = batch
        self.ack_wait = ack_wait
        self.connect_options = dict(connect_options or {})
        self.command_id_prefix = command_id_prefix
        self._handlers: dict[str, MessageHandler] = {}
        self._held: dict[str, deque[_Held]] = {}
        self._loop: LoopThread | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._failures = 0
        self.stop = threading.Event()
        self.handled = 0  # commands that committed
        self.replayed = 0  # redeliveries answered from processed_commands
        self.dead_lettered = 0
        self.last_error: str | None = None

    # -- registration -----------------------------------------------------------

    def handles(self, message_type: str) -> Callable[[MessageHandler], MessageHandler]:
        """Decorate the function turning a ``message_type`` message into a command."""

        def decorate(fn: MessageHandler) -> MessageHandler:
            if message_type in self._handlers:
                raise InboxError(f"inbox {self.name!r} already handles {message_type!r}")
            self._handlers[message_type] = fn
            return fn

        return decorate

    # -- connection -------------------------------------------------------------

    @property
    def loop(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread(f"cqrs-inbox-{self.name}")
        return self._loop

    def _subscription(self) -> JetStreamContext.PullSubscription:
        if self._sub is not None and self._nc is not None and self._nc.is_connected:
            return self._sub
        self._drop()
        try:
            self._nc = self.loop.run(self._connect(), timeout=10.0)
            self._js = self._nc.jetstream()
            config = ConsumerConfig(
                durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL, ack_wait=self.ack_wait, max_deliver=-1,
                max_ack_pending=max(1000, self.batch * 4), filter_subject=self.subject,
            )  # fmt: skip
            self._sub = self.loop.run(
                self._js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream,
                                        config=config),
                timeout=10.0,
            )  # fmt: skip
        except Exception as exc:
            self._drop()
            raise broker_error(exc, self.url, f"subscribing to stream {self.stream!r}") from exc
        # Whatever was held was delivered on the old connection: JetStream redelivers it.
        self._held.clear()
        return self._sub

    async def _connect(self) -> Client:
        return await connection.connect(
            self.url, name=f"cqrs-inbox-{self.name}", timeout=2.0,
            options=self.connect_options, logger=log,
        )  # fmt: skip

    def _drop(self) -> None:
        nc, self._nc, self._js, self._sub = self._nc, None, None, None
        connection.close(self.loop, nc, log)

    def close(self) -> None:
        """Close the connection and the loop thread (unacknowledged messages are redelivered)."""
        self._drop()
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    # -- loops ------------------------------------------------------------------

    def run_once(self, timeout: float = 1.0) -> int:
        """Fetch one batch (waiting up to ``timeout`` s) and handle it; messages finished."""
        sub = self._subscription()
        done = self._retry_held()
        wait = 0.05 if self._held else timeout
        try:
            fetched = self.loop.run(sub.fetch(self.batch, timeout=wait), timeout=wait + 10.0)
        except (nats.errors.TimeoutError, TimeoutError):
            fetched = []
        except Exception as exc:
            self._drop()
            raise broker_error(exc, self.url, f"fetching from {self.durable!r}") from exc
        for msg in fetched:
            done += self._offer(msg)
        self._touch_held()
        return done

    def run_until_idle(self, *, idle: float = 1.0, max_wait: float = 120.0) -> int:
        """Handle messages until a fetch of ``idle`` s brings none and none is held."""
        deadline = time.monotonic() + max_wait
        total = 0
        while not self.stop.is_set():
            try:
                n = self.run_once(timeout=idle)
            except BrokerError as exc:
                if time.monotonic() > deadline:
                    raise
                self._broker_failed(exc)
                continue
            self._failures = 0
            total += n
            if n == 0 and not self._held:
                return total
            if time.monotonic() > deadline:
                return total
        return total

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Handle messages until ``stop`` is set; broker failures back off and retry."""
        if stop is not None:
            self.stop = stop
        try:
            while not self.stop.is_set():
                try:
                    self.run_once(timeout=1.0)
                    self._failures = 0
                except BrokerError as exc:
                    self._broker_failed(exc)
        finally:
            self.close()

    def _broker_failed(self, exc: BrokerError) -> None:
        self._failures += 1
        self.last_error = describe(exc)
        delay = backoff_delay(self._failures, 0.1, 30.0)
        log.warning("inbox %s: %s (retry in %.1fs)", self.name, exc, delay)
        self.stop.wait(delay)

    # -- one message --------------------------------------------------------------

    def _offer(self, msg: Msg) -> int:
        key = self._stream_key(msg)
        queue = self._held.get(key)
        if queue is not None:  # an earlier message of this stream is being retried
            queue.append(_Held(msg, 0, 0.0, time.monotonic()))
            return 0
        failed = self._handle(msg)
        if failed is None:
            return 1
        error, transient = failed
        failures = 0 if transient else max(1, self._deliveries(msg))
        if failures > self.retry.retries:
            self._dead_letter(msg, error)
            return 1
        due = time.monotonic() + self.retry.delay(failures)
        self._held[key] = deque([_Held(msg, failures, due, time.monotonic())])
        return 0

    def _retry_held(self) -> int:
        done = 0
        now = time.monotonic()
        for key in list(self._held):
            queue = self._held[key]
            while queue and queue[0].due <= now:
                head = queue[0]
                failed = self._handle(head.msg)
                if failed is not None:
                    error, transient = failed
                    head.failures += 0 if transient else 1
                    if transient or head.failures <= self.retry.retries:
                        head.due = time.monotonic() + self.retry.delay(head.failures)
                        break
                    self._dead_letter(head.msg, error)
                queue.popleft()
                done += 1
            if not queue:
                del self._held[key]
        return done

    def _touch_held(self) -> None:
        """Keep held messages from being redelivered while they wait (``in_progress``)."""
        now = time.monotonic()
        for queue in self._held.values():
            for held in queue:
                if now - held.touched >= self.ack_wait / 3:
                    held.touched = now
                    self._ack(held.msg, progress=True)

    def _handle(self, msg: Msg) -> tuple[str, bool] | None:
        """Run ``msg``'s command and acknowledge it; when it failed, the error text and
        whether the failure was the database's connection (retried, never counted)."""
        try:
            incoming = self.incoming(msg)
        except InboxError as exc:
            self._dead_letter(msg, describe(exc))
            return None
        handler = self._handlers.get(incoming.type)
        if handler is None:
            known = sorted(self._handlers)
            self._dead_letter(msg, f"InboxError: no handler for type {incoming.type!r} ({known})")
            return None
        try:
            command = handler(incoming)
            if command is not None:
                with self.sessions() as session:
                    cid = self.command_id_prefix + incoming.id
                    outcome = self.bus.execute(command, session, command_id=cid,
                                               correlation_id=incoming.correlation_id)  # fmt: skip
                if outcome.replayed:
                    self.replayed += 1
                else:
                    self.handled += 1
        except Exception as exc:
            self.last_error = describe(exc)
            log.warning("inbox %s: message %s (%s) failed: %s", self.name, incoming.id,
                        incoming.type, self.last_error)  # fmt: skip
            return self.last_error, is_transient(exc)
        self._ack(msg)
        return None

    def incoming(self, msg: Msg) -> IncomingMessage:
        """What handlers see of ``msg``; :class:`InboxError` when it cannot be read."""
        headers = dict(msg.headers or {})
        try:
            data = json.loads(msg.data) if msg.data else None
        except ValueError as exc:
            raise InboxError(f"message on {msg.subject!r} is not JSON: {exc}") from exc
        meta = msg.metadata
        msg_id = headers.get(h.MSG_ID) or f"{self.stream}:{meta.sequence.stream}"
        kind = headers.get(h.TYPE) or msg.subject
        return IncomingMessage(msg_id, kind, msg.subject, data, headers, meta.sequence.stream,
                               meta.num_delivered)  # fmt: skip

    def _stream_key(self, msg: Msg) -> str:
        headers = msg.headers or {}
        return headers.get(h.STREAM_ID) or msg.subject

    @staticmethod
    def _deliveries(msg: Msg) -> int:
        try:
            return int(msg.metadata.num_delivered)
        except Exception:
            return 1

    def _ack(self, msg: Msg, *, progress: bool = False) -> None:
        try:
            self.loop.run(msg.in_progress() if progress else msg.ack(), timeout=5.0)
        except Exception as exc:  # the message comes back and is a no-op then
            log.debug("ack failed: %s", exc)

    def _dead_letter(self, msg: Msg, error: str) -> None:
        """Publish ``msg`` to the dead-letter subject, then acknowledge it."""
        # JetStream's own headers (expected stream, ...) would refuse the republish
        headers = {k: v for k, v in (msg.headers or {}).items()
                   if not k.startswith("Nats-") or k == h.MSG_ID}  # fmt: skip
        headers[ERROR] = clip(error.replace("\r", " ").replace("\n", " "), HEADER_LIMIT)
        headers[ORIGINAL_SUBJECT] = msg.subject
        headers[INBOX] = self.name
        js, nc = self._js, self._nc
        if js is None or nc is None:
            return
        try:
            self.loop.run(js.publish(self.dead_letter_subject, msg.data, headers=headers),
                          timeout=10.0)  # fmt: skip
        except nats.js.errors.NoStreamResponseError:
            log.warning("inbox %s: no JetStream stream stores %s; the dead letter is sent "
                        "without storage", self.name, self.dead_letter_subject)  # fmt: skip
            self.loop.run(nc.publish(self.dead_letter_subject, msg.data, headers=headers))
        except Exception as exc:
            log.warning("inbox %s: dead-lettering failed (%s); the message will come back",
                        self.name, describe(exc))  # fmt: skip
            return
        log.warning("inbox %s: message on %s dead-lettered to %s: %s", self.name, msg.subject,
                    self.dead_letter_subject, error)  # fmt: skip
        self.dead_lettered += 1
        self._ack(msg)
