"""Public: every exception the toolkit raises on purpose.

One tree, stable codes. Each code has a section in ``docs/errors.md`` that
says what happened and what to do. That page ships inside every installed
copy, so ``str(exc)`` ends with the command that prints the section of the
version installed, ``cqrs explain CODE`` (no URL that could move or drift
from the installed release; ``cqrs.docs.error_section(code)`` from Python)::

    CqrsError                         cqrs-error
    ├── ConfigurationError            cqrs-config
    │   ├── AsyncBindError            cqrs-async-bind
    │   └── OfflineMigrationUnsupported cqrs-offline-sql
    ├── InvalidInput                  cqrs-input
    │   ├── InvalidStreamId           cqrs-stream-id
    │   └── PayloadTooLarge           cqrs-payload-size
    ├── ConcurrencyError              cqrs-concurrency
    │   ├── TransactionConflict       cqrs-transaction-conflict
    │   ├── AppendOrderConflict       cqrs-append-order
    │   └── AppendRefused             cqrs-append-refused
    ├── DuplicateEventError           cqrs-duplicate-event
    ├── StreamNotFound                cqrs-stream-not-found
    ├── StreamArchived                cqrs-stream-archived
    ├── SerializationError            cqrs-serialization
    │   └── UnknownEventType          cqrs-unknown-event-type
    ├── EventRegistrationError        cqrs-event-registration
    ├── PartitionMissing              cqrs-partition-missing
    ├── PartitionInUse                cqrs-partition-in-use
    ├── LegacyImportError             cqrs-legacy-import
    ├── AggregateError                cqrs-aggregate
    │   └── UnhandledEvent            cqrs-unhandled-event
    ├── CommandError                  cqrs-command
    │   └── HandlerNotFound           cqrs-handler-not-found
    ├── QueryError                    cqrs-query
    │   └── QueryHandlerNotFound      cqrs-query-handler-not-found
    ├── ProjectionError               cqrs-projection
    │   └── ReadModelTimeout          cqrs-read-timeout
    ├── RelayError                    cqrs-relay
    │   └── DedupeWindowTooShort      cqrs-dedupe-window
    ├── BrokerError                   cqrs-broker
    │   ├── BrokerUnavailable         cqrs-broker-unavailable
    │   ├── BrokerAuthFailed          cqrs-broker-auth
    │   └── StreamMissing             cqrs-jetstream-stream-missing
    └── InboxError                    cqrs-inbox

Example::

    >>> from cqrs.errors import ConcurrencyError
    >>> err = ConcurrencyError("order-1", expected=3, actual=4)
    >>> (err.stream_id, err.expected, err.actual)
    ('order-1', 3, 4)
    >>> err.code
    'cqrs-concurrency'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from cqrs.store.horizon import HorizonHolder

EXPLAIN = "cqrs explain"
"""The stable address of an error's documentation: ``cqrs explain CODE``."""


class CqrsError(Exception):
    """Base of every toolkit error; ``code`` names its section in docs/errors.md
    (printed by ``cqrs explain CODE``)."""

    code: ClassVar[str] = "cqrs-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} (see `{EXPLAIN} {self.code}`)"


class ConfigurationError(CqrsError):
    """Settings or wiring that cannot work (bad URL, unknown strategy, ...)."""

    code = "cqrs-config"


class AsyncBindError(ConfigurationError):
    """A sync API was handed an engine (or session, connection) on the async driver.

    Outside ``AsyncSession.run_sync`` SQLAlchemy would raise ``MissingGreenlet``
    on the first statement; this says which API to use instead. ``api`` names
    the sync API, ``instead`` what to use.
    """

    code = "cqrs-async-bind"

    def __init__(self, api: str, given: str, instead: str) -> None:
        super().__init__(
            f"{api} is a sync API and was given {given}, which works only under asyncio "
            "(outside AsyncSession.run_sync SQLAlchemy raises MissingGreenlet); "
            f"{instead}, or give it a sync engine: create_engine(url) with the same "
            "postgresql+psycopg:// URL"
        )
        self.api = api
        self.given = given
        self.instead = instead


class OfflineMigrationUnsupported(ConfigurationError):
    """An Alembic operation that needs the live database ran in offline (``--sql``) mode.

    Raised before anything is rendered for that operation; the ``alembic`` command
    prints it as ``FAILED: ...``.
    """

    code = "cqrs-offline-sql"

    def __init__(self, operation: str, alternative: str) -> None:
        super().__init__(
            f"op.{operation} reads the database's catalog, so `alembic ... --sql` cannot "
            f"render it as SQL; {alternative}"
        )
        self.operation = operation


class InvalidInput(CqrsError):
    """Input rejected before anything was written."""

    code = "cqrs-input"


class InvalidStreamId(InvalidInput):
    """A stream id that is empty, too long or not a string."""

    code = "cqrs-stream-id"

    def __init__(self, stream_id: object, reason: str) -> None:
        super().__init__(
            f"invalid stream id {stream_id!r}: {reason}; "
            "use a non-empty string within Settings.max_id_length"
        )
        self.stream_id = stream_id


class PayloadTooLarge(InvalidInput):
    """An event whose serialised payload exceeds ``Settings.max_payload_bytes``."""

    code = "cqrs-payload-size"

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        super().__init__(
            f"event {event_type!r} serialises to {size} bytes, over the limit of {limit}; "
            "store large blobs elsewhere and put a reference in the event, "
            "or raise Settings.max_payload_bytes"
        )
        self.event_type = event_type
        self.size = size
        self.limit = limit


class ConcurrencyError(CqrsError):
    """The stream's version was not the one the writer expected.

    ``actual`` is ``None`` when the stream does not exist.
    """

    code = "cqrs-concurrency"

    def __init__(self, stream_id: str, expected: object, actual: int | None) -> None:
        shown = "no stream" if actual is None else f"version {actual}"
        super().__init__(
            f"stream {stream_id!r}: expected {expected}, found {shown}; "
            "reload the stream and retry the command (CommandBus retries this for you)"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class TransactionConflict(ConcurrencyError):
    """PostgreSQL aborted the append: a serialization failure or deadlock with another writer.

    Raised under ``REPEATABLE READ``/``SERIALIZABLE`` when the stream changed after the
    transaction's snapshot, and for deadlocks. It is a ``ConcurrencyError``, so
    ``RetryOnConflict`` re-runs the command; the transaction itself is aborted.
    """

    code = "cqrs-transaction-conflict"

    def __init__(self, stream_id: str, expected: object, sqlstate: str) -> None:
        CqrsError.__init__(
            self,
            f"stream {stream_id!r}: PostgreSQL aborted the append (SQLSTATE {sqlstate}, "
            f"{'deadlock' if sqlstate == '40P01' else 'serialization failure'}) because "
            "another transaction changed it concurrently; roll back and run the command "
            "again (CommandBus retries this for you)",
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual: int | None = None
        self.sqlstate = sqlstate


class AppendOrderConflict(ConcurrencyError):
    """An append refused because it would reach readers before the version it follows.

    The log is read in transaction-id order, and a transaction takes its id at
    its first write. This one wrote something earlier (its own table, an
    idempotency claim, another stream), then another transaction appended to
    the same stream and committed; appending now would put this version before
    that one. Nothing was written by this append. Run the whole unit of work
    again in a fresh transaction: it takes a newer id and succeeds.
    ``RetryOnConflict`` does that when the command bus owns the transaction.
    """

    code = "cqrs-append-order"

    def __init__(
        self, stream_id: str, expected: object, transaction_id: int, last_transaction_id: int
    ) -> None:
        CqrsError.__init__(
            self,
            f"stream {stream_id!r}: transaction {transaction_id} wrote before transaction "
            f"{last_transaction_id}, which appended to this stream and committed; appending "
            "now would put this version before that one in the log, so nothing was appended. "
            "Roll back and run the unit of work again in a fresh transaction, which succeeds "
            "(CommandBus retries this for you when it owns the transaction; "
            "cqrs.commands.run_in_transaction does it for a transaction of your own)",
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual: int | None = None
        self.transaction_id = transaction_id
        self.last_transaction_id = last_transaction_id


class AppendRefused(ConcurrencyError):
    """A multi-stream append (``EventStore.append_many``) was refused as a whole.

    ``refusals`` maps each refused stream to its own error (``ConcurrencyError``,
    ``AppendOrderConflict``, ``StreamArchived``); nothing of the call was
    written. With ``torn``, a stream of the call was created by another
    transaction after the check: the statement failed and the transaction is
    aborted. Either way a retry in a fresh transaction sees the streams anew.
    """

    code = "cqrs-append-refused"

    def __init__(self, refusals: dict[str, CqrsError], *, torn: bool = False) -> None:
        if torn:
            what = (
                "a stream of this append was created by a concurrent transaction after its "
                "check; nothing was written and the transaction is aborted"
            )
        else:
            what = f"{len(refusals)} streams of this append were refused, nothing was written: " + (
                "; ".join(err.message for err in refusals.values())
            )
        CqrsError.__init__(
            self,
            f"{what}; roll back, reload the aggregates and retry the command "
            "(CommandBus retries this for you)",
        )
        self.refusals = refusals
        self.torn = torn
        self.stream_id = next(iter(refusals), "")
        self.expected: object = None
        self.actual: int | None = None


class DuplicateEventError(CqrsError):
    """Some, but not all, of the event ids in an append are already in the stream."""

    code = "cqrs-duplicate-event"

    def __init__(self, stream_id: str, event_ids: list[str]) -> None:
        super().__init__(
            f"stream {stream_id!r} already holds events {event_ids} of this append, but not "
            "all of them; re-send exactly the original batch, or new events with new ids"
        )
        self.stream_id = stream_id
        self.event_ids = event_ids


class StreamNotFound(CqrsError):
    """The stream does not exist."""

    code = "cqrs-stream-not-found"

    def __init__(self, stream_id: str) -> None:
        super().__init__(
            f"stream {stream_id!r} does not exist; create it by appending with "
            "expected_version=NO_STREAM, or use get_or_none"
        )
        self.stream_id = stream_id


class StreamArchived(CqrsError):
    """The stream was archived and takes no more events."""

    code = "cqrs-stream-archived"

    def __init__(self, stream_id: str) -> None:
        super().__init__(
            f"stream {stream_id!r} is archived and takes no more events; "
            "start a new stream, or unarchive it with EventStore.archive(..., archived=False)"
        )
        self.stream_id = stream_id


class SerializationError(CqrsError):
    """An event or snapshot could not be turned into JSON, or back."""

    code = "cqrs-serialization"


class UnknownEventType(SerializationError):
    """A stored event type name that no registered class answers to."""

    code = "cqrs-unknown-event-type"

    def __init__(self, event_type: str, stream_id: str, position: int) -> None:
        super().__init__(
            f"no event class is registered for type {event_type!r} "
            f"(stream {stream_id!r}, global position {position}); import the module "
            "that declares it, register an alias for a renamed class, or filter it out "
            "with read_all(types=...)"
        )
        self.event_type = event_type
        self.stream_id = stream_id
        self.position = position


class EventRegistrationError(CqrsError):
    """A clash or mistake while declaring event classes or upcasters."""

    code = "cqrs-event-registration"


class PartitionMissing(CqrsError):
    """No partition of the events table covers the time being written."""

    code = "cqrs-partition-missing"

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"no partition of the events table accepts this row ({detail}); "
            "run `cqrs partitions ensure` (or keep the projection runner up: it keeps "
            "partitions ahead of time)"
        )


class PartitionInUse(CqrsError):
    """A partition still holds events of streams that are not archived."""

    code = "cqrs-partition-in-use"

    def __init__(self, partition: str, stream_ids: list[str]) -> None:
        super().__init__(
            f"partition {partition!r} still holds events of live streams {stream_ids} "
            "(not archived); archive those streams first (EventStore.archive), or pass "
            "force=True / --force if their older events may leave the live log"
        )
        self.partition = partition
        self.stream_ids = stream_ids


class LegacyImportError(CqrsError):
    """An unpartitioned events table that cannot be imported as it is."""

    code = "cqrs-legacy-import"


class AggregateError(CqrsError):
    """Base for aggregate misuse."""

    code = "cqrs-aggregate"


class UnhandledEvent(AggregateError):
    """An aggregate received an event it has no ``@applies`` handler for."""

    code = "cqrs-unhandled-event"

    def __init__(self, aggregate: str, event_type: str) -> None:
        super().__init__(
            f"aggregate {aggregate} has no @applies handler for event {event_type!r}; "
            "add one (an empty handler is fine for events that change no state)"
        )
        self.aggregate = aggregate
        self.event_type = event_type


class CommandError(CqrsError):
    """Base for command bus errors."""

    code = "cqrs-command"


class HandlerNotFound(CommandError):
    """A command was sent that no handler is registered for."""

    code = "cqrs-handler-not-found"

    def __init__(self, message_type: str) -> None:
        super().__init__(
            f"no handler is registered for {message_type}; decorate one with "
            "@bus.handles(...) and make sure its module is imported"
        )
        self.message_type = message_type


class QueryError(CqrsError):
    """Base for query bus errors (a handler registered twice, ...)."""

    code = "cqrs-query"


class QueryHandlerNotFound(QueryError):
    """A query was asked that no handler is registered for."""

    code = "cqrs-query-handler-not-found"

    def __init__(self, query_type: str) -> None:
        super().__init__(
            f"no handler is registered for query {query_type}; decorate one with "
            "@queries.handles(...) and make sure its module is imported"
        )
        self.query_type = query_type


class ProjectionError(CqrsError):
    """Base for projection definition and runner errors."""

    code = "cqrs-projection"


class ReadModelTimeout(ProjectionError):
    """A read-your-writes wait (or a runner's catch-up) ran out before the target.

    ``holder`` is the ``cqrs.store.horizon.HorizonHolder`` that kept the
    target unreadable, when one did.
    """

    code = "cqrs-read-timeout"

    def __init__(self, message: str, *, holder: HorizonHolder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class RelayError(CqrsError):
    """A relay definition that cannot work (an event selected twice, a bad subject, ...)."""

    code = "cqrs-relay"


class DedupeWindowTooShort(RelayError):
    """Events are re-published after longer than the JetStream stream's duplicate window.

    Reported (logged and shown as the relay's last error), not raised: the
    relay goes on, and consumers may see those events twice.
    """

    code = "cqrs-dedupe-window"

    def __init__(self, relay: str, stream: str, age: float, window: float) -> None:
        super().__init__(
            f"relay {relay!r} is re-sending events {age:.0f}s old to JetStream stream "
            f"{stream!r}, whose duplicate window is {window:.0f}s: copies the broker got "
            "before the outage may be delivered twice; raise the stream's duplicate_window "
            "above the longest relay outage you plan for, and keep consumers idempotent "
            "(the inbox is)"
        )
        self.relay = relay
        self.stream = stream
        self.age = age
        self.window = window


class BrokerError(CqrsError):
    """The message broker (NATS JetStream) refused or could not take a publish or a fetch.

    The relay and the inbox log it on one line, record it as their last
    error, and retry with back-off; nothing is lost or skipped.
    """

    code = "cqrs-broker"


class BrokerUnavailable(BrokerError):
    """The NATS server does not answer (down, restarting, wrong URL, acks timing out)."""

    code = "cqrs-broker-unavailable"


class BrokerAuthFailed(BrokerError):
    """The NATS server refused the credentials (or their permissions)."""

    code = "cqrs-broker-auth"


class StreamMissing(BrokerError):
    """No JetStream stream stores the subject published to (or the named stream is absent)."""

    code = "cqrs-jetstream-stream-missing"


class InboxError(CqrsError):
    """An inbox definition that cannot work, or a message it cannot turn into a command."""

    code = "cqrs-inbox"
