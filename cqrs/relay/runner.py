"""Public: ``RelayRunner``, the projection runner with a JetStream publisher.

It is :class:`~cqrs.projections.runner.ProjectionRunner` (the same loop,
batches, shards, leases, NOTIFY wake-ups and failure policy) over
:class:`~cqrs.relay.relay.Relay` definitions, plus what a broker needs:

- a broker failure (server down or restarting, auth refused, no JetStream
  stream for the subject, acks timing out) rolls the batch back, is logged on
  one line, recorded as the shard's last error (``cqrs projections status``),
  and retried with back-off up to ``max_backoff`` seconds; it never parks an
  event and never ends the process;
- a batch that may repeat an earlier publish (the first of a shard in this
  process, or one after a failure) is checked against the stream's
  duplicate window: events older than the window are reported
  (:class:`~cqrs.errors.DedupeWindowTooShort`) since the broker can no
  longer drop their repeats.

::

    runner = RelayRunner(engine, [relay], nats_url="nats://127.0.0.1:4222")
    runner.stop_on_signals()
    runner.run_forever()
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, text

from cqrs.backoff import delay as backoff_delay
from cqrs.errors import BrokerError, ReadModelTimeout, RelayError
from cqrs.events.model import Position
from cqrs.projections import sql
from cqrs.projections.batch import Outcome, Target
from cqrs.projections.runner import ProjectionRunner
from cqrs.relay.decode import RelayStore
from cqrs.relay.publisher import JetStreamPublisher
from cqrs.relay.relay import BrokerDown, Relay

log = logging.getLogger("cqrs.relay")
HAS_CHECKPOINT = text("SELECT 1 FROM checkpoints WHERE projection = :p AND shard = :s")


class RelayRunner(ProjectionRunner):
    """Runs relays against ``engine``, publishing to the NATS server at ``nats_url``.

    ``publisher`` replaces the default :class:`JetStreamPublisher` (tests,
    custom connect options go through ``connect_options``); every other
    keyword is :class:`ProjectionRunner`'s.
    """

    def __init__(
        self,
        engine: Engine,
        relays: Sequence[Relay],
        *,
        nats_url: str | None = None,
        publisher: JetStreamPublisher | None = None,
        connect_options: Mapping[str, Any] | None = None,
        ack_timeout: float = 10.0,
        max_backoff: float = 30.0,
        **kwargs: Any,
    ) -> None:
        if not all(isinstance(r, Relay) for r in relays):
            raise RelayError(f"RelayRunner runs Relay definitions, got {list(relays)}")
        kwargs.setdefault("upkeep_every", None)  # partitions are the projection runner's job
        super().__init__(engine, relays, **kwargs)
        self.store = RelayStore(self.store, relays)  # verbatim payloads skip decoding
        if publisher is None:
            if not nats_url:
                raise RelayError("RelayRunner needs nats_url= (or publisher=)")
            streams = {r.stream for r in relays}
            publisher = JetStreamPublisher(
                nats_url, stream=streams.pop() if len(streams) == 1 else None,
                ack_timeout=ack_timeout, connect_options=connect_options,
                name=f"cqrs-relay-{self.owner}",
            )  # fmt: skip
        self.publisher = publisher
        for relay in relays:
            relay.bind(publisher, self.store.codec)
        self.max_backoff = max_backoff
        self.failures = 0  # broker failures in a row
        self.last_broker_error: BrokerError | None = None
        self._clean: set[tuple[str, int]] = set()  # shards whose last batch went through

    def process(self, target: Target) -> Outcome:
        """One batch of ``target``; a broker failure backs off and returns a no-op outcome."""
        relay = target.projection
        assert isinstance(relay, Relay)
        key = (target.checkpoint_name, target.shard)
        relay.repeat_possible = key not in self._clean and self._has_checkpoint(target)
        relay.report = None
        try:
            # connect before the batch: a broker that is down never costs a transaction
            self.publisher.connect()
            outcome = super().process(target)
        except BrokerError as error:
            self._clean.discard(key)
            self._broker_failed(target, error)
            return Outcome(locked=False)
        except BrokerDown as down:
            self._clean.discard(key)
            self._broker_failed(target, down.error)
            return Outcome(locked=False)
        finally:
            relay.repeat_possible = False
        if outcome.locked:
            self._clean.add(key)
            self.failures = 0
        if relay.report is not None:
            log.warning("relay %s shard %s: %s", target.checkpoint_name, target.shard,
                        relay.report)  # fmt: skip
            self._record_error(target, relay.report)
        return outcome

    def _has_checkpoint(self, target: Target) -> bool:
        conn = self._connection()
        with conn.begin():
            row = conn.execute(HAS_CHECKPOINT, {"p": target.checkpoint_name, "s": target.shard})
            return row.first() is not None

    def _broker_failed(self, target: Target, error: BrokerError) -> None:
        self.failures += 1
        self.last_broker_error = error
        delay = backoff_delay(self.failures, 0.1, self.max_backoff)
        log.warning("relay %s shard %s: %s (retry in %.1fs)", target.checkpoint_name,
                    target.shard, error, delay)  # fmt: skip
        try:  # the batch that would have made the checkpoint row was rolled back
            conn = self._connection()
            with conn.begin():
                conn.execute(
                    sql.ENSURE_CHECKPOINT, {"p": target.checkpoint_name, "s": target.shard}
                )
        except Exception:
            log.debug("could not make the checkpoint row", exc_info=True)
        self._record_error(target, error)
        self.stop.wait(delay)

    def run_until_caught_up(self, *, target: Position | None = None, timeout: float = 60.0) -> int:
        """Publish every event up to ``target`` (the head of the log at the call).

        Raises the broker's error when the broker is why ``target`` was not
        reached within ``timeout`` seconds, else ``ReadModelTimeout``.
        """
        try:
            return super().run_until_caught_up(target=target, timeout=timeout)
        except ReadModelTimeout:
            if self.failures and self.last_broker_error is not None:
                raise self.last_broker_error from None
            raise

    def close(self) -> None:
        """Release leases and connections, and close the NATS connection."""
        super().close()
        self.publisher.close()
