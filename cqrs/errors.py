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
    │   ├── PayloadTooLarge           cqrs-payload-size
    │   ├── InvalidTypeName           cqrs-type-name
    │   ├── InvalidAggregateId        cqrs-aggregate-id
    │   ├── InvalidCommandId          cqrs-command-id
    │   ├── InvalidMetadata           cqrs-metadata
    │   ├── PayloadTooDeep            cqrs-payload-depth
    │   └── InvalidReadRange          cqrs-read-range
    ├── ConcurrencyError              cqrs-concurrency
    │   ├── TransactionConflict       cqrs-transaction-conflict
    │   ├── AppendOrderConflict       cqrs-append-order
    │   ├── AppendRefused             cqrs-append-refused
    │   └── StreamAlreadyExists       cqrs-stream-exists
    ├── StreamFull                    cqrs-stream-full
    ├── DatabaseUnavailable           cqrs-database-unavailable
    │   └── CommitOutcomeUnknown      cqrs-commit-unknown
    ├── DuplicateEventError           cqrs-duplicate-event
    ├── StreamNotFound                cqrs-stream-not-found
    ├── StreamArchived                cqrs-stream-archived
    ├── StreamVersionsInconsistent    cqrs-stream-versions
    ├── SerializationError            cqrs-serialization
    │   ├── EventEncodeError          cqrs-event-encode
    │   └── EventDecodeError          cqrs-event-decode
    │       └── UnknownEventType      cqrs-unknown-event-type
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
    │   ├── ReadModelTimeout          cqrs-read-timeout
    │   └── AppendInReadModelBatch    cqrs-append-in-read-model
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
    from cqrs.events.model import Position
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


class EventEncodeError(SerializationError):
    """An event holding a value its field's declared type does not allow.

    Raised by ``EventCodec.encode`` before anything is sent: ``qty="3"`` in an
    ``int`` field, a NaN or infinite float, a mapping key that is not a str.
    ``field`` is the path to the value (``lines[1].price``).

    >>> err = EventEncodeError("order.placed", "qty", "expected an int, got str '3'")
    >>> (err.event_type, err.field)
    ('order.placed', 'qty')
    """

    code = "cqrs-event-encode"

    def __init__(self, event_type: str, field: str, problem: str) -> None:
        super().__init__(
            f"event {event_type!r} does not serialise: field {field!r}: {problem}; nothing was "
            "written. Build the "
            "event with values of the declared types (the codec stores nothing that would "
            "read back as something else), or change the field's annotation"
        )
        self.event_type = event_type
        self.field = field
        self.problem = problem


class EventDecodeError(SerializationError):
    """A stored event that cannot be read back as its class, exactly as stored.

    Carries where it is: ``stream_id``, ``version``, ``position`` (a
    ``Position``, ``None`` when the caller gave only ``global_position``) and
    ``field`` (the path to the value, ``None`` when the whole payload is at
    fault). A ``read_all`` consumer steps over it by reading again with
    ``after=err.position``.

    >>> from cqrs.events.model import Position
    >>> err = EventDecodeError("expected true or false, got the string 'false'",
    ...     event_type="order.paid", stream_id="order-1", version=3,
    ...     position=Position(812, 40), field="paid")
    >>> (err.stream_id, err.version, str(err.position), err.field)
    ('order-1', 3, '812:40', 'paid')
    """

    code = "cqrs-event-decode"

    def __init__(
        self,
        problem: str,
        *,
        event_type: str,
        stream_id: str,
        version: int | None = None,
        position: Position | int | None = None,
        field: str | None = None,
        fix: str = (
            "fix the row, or bump the class's schema version and register an upcaster "
            "that turns the stored shape into the declared one"
        ),
    ) -> None:
        if position is None or isinstance(position, int):
            token, global_position = None, position
        else:
            token, global_position = position, position.global_position
        place = f"stream {stream_id!r}"
        if version is not None:
            place += f", version {version}"
        if position is not None:
            place += f", position {position}"
        where = f" field {field!r}" if field else ""
        super().__init__(
            f"stored event {event_type!r} ({place}){where} cannot be read: {problem}; {fix}. "
            "A read_all reader can step over it with read_all(after=err.position)"
        )
        self.problem = problem
        self.event_type = event_type
        self.stream_id = stream_id
        self.version = version
        self.position: Position | None = token
        self.global_position: int | None = global_position
        self.field = field


class UnknownEventType(EventDecodeError):
    """A stored event type name that no registered class answers to."""

    code = "cqrs-unknown-event-type"

    def __init__(
        self,
        event_type: str,
        stream_id: str,
        position: Position | int | None,
        *,
        version: int | None = None,
    ) -> None:
        super().__init__(
            f"no event class is registered for type {event_type!r}",
            event_type=event_type,
            stream_id=stream_id,
            version=version,
            position=position,
            fix="import the module that declares it, register an alias for a renamed class, "
            "or filter it out with read_all(types=...)",
        )


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


class AppendInReadModelBatch(ProjectionError):
    """An append in the transaction of a projection batch that declared it appends nothing.

    A runner's batch of a projection made with ``appends=False`` (the default;
    a ``ProcessManager`` appends) is not waited for by readers of the log, so
    an event it wrote could land behind their cursors: the store refuses it,
    and nothing of the statement is written.
    """

    code = "cqrs-append-in-read-model"


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


class StreamVersionsInconsistent(CqrsError):
    """A stream whose stored events do not run 1..version without gaps or repeats.

    Raised on an append the stream refused, in place of a ``ConcurrencyError``
    whose "reload and retry" could never succeed: the events (imported by hand,
    say) repeat a version, skip one, or go past the stream row's version, so a
    writer that counts the events it loaded never expects the version the row
    holds. It is not a ``ConcurrencyError``: retrying does not help, repairing
    the rows does. ``duplicated``, ``missing`` and ``beyond`` list the versions
    at fault (at most 20 of each).
    """

    code = "cqrs-stream-versions"

    def __init__(
        self,
        stream_id: str,
        version: int,
        *,
        duplicated: list[int],
        missing: list[int],
        beyond: list[int],
    ) -> None:
        faults = [
            f"{what} {shown}"
            for what, shown in (
                ("versions stored more than once", _some(duplicated)),
                ("versions missing", _some(missing)),
                (f"versions outside 1..{version}", _some(beyond)),
            )
            if shown
        ]
        super().__init__(
            f"stream {stream_id!r} is inconsistent: its row in streams says version {version} "
            f"but its events in the events table have {'; '.join(faults)}; writers that load "
            "it never expect the right version, so retrying cannot help. Repair the rows "
            "(renumber or delete events so versions run 1..N once each, then set "
            "streams.version to N), or restore the missing events (a partition archived with "
            "--force holds live streams' older events)"
        )
        self.stream_id = stream_id
        self.version = version
        self.duplicated = duplicated
        self.missing = missing
        self.beyond = beyond


def _some(versions: list[int], limit: int = 20) -> str:
    if not versions:
        return ""
    shown = ", ".join(map(str, versions[:limit]))
    return f"[{shown}{', ...' if len(versions) > limit else ''}]"


class InvalidTypeName(InvalidInput):
    """An event type or stream type name that is not a string, is blank or invisible,
    holds a control character or a lone surrogate, or is over ``Settings.max_type_length``."""

    code = "cqrs-type-name"

    def __init__(self, kind: str, name: object, reason: str) -> None:
        super().__init__(
            f"invalid {kind} {_shown(name)}: {reason}; use a short printable name "
            "(letters, digits, dots, dashes) within Settings.max_type_length"
        )
        self.kind = kind
        self.name = name


class InvalidAggregateId(InvalidInput):
    """An aggregate id given to a ``Repository`` that is not a usable string."""

    code = "cqrs-aggregate-id"

    def __init__(self, aggregate: str, id: object, reason: str) -> None:
        super().__init__(
            f"invalid {aggregate} id {_shown(id)}: {reason}; pass the aggregate's id as a "
            "non-empty printable str (convert numbers and UUIDs with str())"
        )
        self.aggregate = aggregate
        self.id = id


class InvalidCommandId(InvalidInput):
    """A command id that is not a usable string, or is over ``Settings.max_command_id_length``."""

    code = "cqrs-command-id"

    def __init__(self, command_id: object, reason: str) -> None:
        super().__init__(
            f"invalid command id {_shown(command_id)}: {reason}; use a non-empty printable "
            "string within Settings.max_command_id_length (a UUID is a good command id)"
        )
        self.command_id = command_id


class InvalidMetadata(InvalidInput):
    """Event metadata that is not a mapping with string keys, or holds text that is not UTF-8."""

    code = "cqrs-metadata"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"invalid event metadata: {reason}; pass a dict with str keys and JSON values "
            "(str, int, float, bool, None, lists and dicts of them)"
        )


class PayloadTooDeep(InvalidInput):
    """A payload or metadata nested deeper than ``Settings.max_nesting_depth`` (or a cycle)."""

    code = "cqrs-payload-depth"

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            f"{what} is nested more than {limit} levels deep (or refers to itself); flatten "
            "it (store a tree as a list of nodes with parent ids), or raise "
            "Settings.max_nesting_depth"
        )
        self.what = what
        self.limit = limit


class InvalidReadRange(InvalidInput):
    """A read argument out of range: a limit, a version or a position."""

    code = "cqrs-read-range"


class StreamAlreadyExists(ConcurrencyError):
    """An aggregate was created (``Repository.create``) with an id whose stream exists.

    Not retried by ``RetryOnConflict``: running the command again cannot help.
    """

    code = "cqrs-stream-exists"

    def __init__(self, stream_id: str, actual: int | None, aggregate: str = "stream") -> None:
        CqrsError.__init__(
            self,
            f"{aggregate} stream {stream_id!r} already exists (version {actual}); load it "
            "with Repository.get() (or get_or_none()) instead of create(), or pick a new id",
        )
        self.stream_id = stream_id
        self.expected: object = 0
        self.actual = actual


class StreamFull(CqrsError):
    """Appending would take a stream's version past 2,147,483,647, the largest it can hold."""

    code = "cqrs-stream-full"

    def __init__(self, stream_id: str, version: int | None, count: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {version}; {count} more event(s) would pass "
            "2147483647, the largest stream version; archive it and continue in a new "
            "stream (a snapshot or a summary event carries the state over)"
        )
        self.stream_id = stream_id
        self.version = version
        self.count = count


class DatabaseUnavailable(CqrsError):
    """PostgreSQL could not be reached or dropped the connection (refused, shut down,
    starting up, terminated). The cause is the driver's error (``__cause__``).

    The command bus retries a command after this when running it again is safe
    (``cqrs.commands.RetryOnUnavailable``).
    """

    code = "cqrs-database-unavailable"

    def __init__(self, detail: str, *, sqlstate: str | None = None) -> None:
        super().__init__(
            f"the database is unavailable ({detail}); nothing of this transaction was "
            "committed; check that PostgreSQL is up and reachable at the configured URL, "
            "then run the command again (the command bus retries for you)"
        )
        self.detail = detail
        self.sqlstate = sqlstate


class CommitOutcomeUnknown(DatabaseUnavailable):
    """The connection died during COMMIT: the transaction may or may not have committed.

    For a command with a command id the bus finds out from ``processed_commands``
    and retries only when it did not commit; without one it cannot tell.
    """

    code = "cqrs-commit-unknown"

    def __init__(self, detail: str, *, sqlstate: str | None = None) -> None:
        CqrsError.__init__(
            self,
            f"the connection was lost during COMMIT ({detail}), so the transaction may or may "
            "not have committed; check before running it again, and give commands a "
            "command_id so the command bus can find out and retry safely",
        )
        self.detail = detail
        self.sqlstate = sqlstate


def _shown(value: object, limit: int = 60) -> str:
    """``repr`` of ``value``, cut to ``limit`` characters (a 10 MB id stays out of logs)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
