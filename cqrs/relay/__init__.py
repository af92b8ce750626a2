"""Public: integration events out to NATS JetStream, and back in (extra ``nats``).

Out: a :class:`Relay` selects the events a service lets out (a mapping
function per type, if they should look different outside) and a
:class:`RelayRunner` publishes them with the event id as ``Nats-Msg-Id``,
advancing its checkpoint only after JetStream acknowledged the batch. In: an
:class:`Inbox` reads a durable JetStream consumer and dispatches each message
as a command through the ``CommandBus``, the message id as the command id::

    from cqrs.relay import Inbox, Relay, RelayRunner

Needs ``pip install 'cqrs[nats]'`` (nats-py). See ``docs/guides/relay.md``.
"""

from cqrs.relay.inbox import Inbox, IncomingMessage, RetryPolicy
from cqrs.relay.messages import IntegrationEvent, OutgoingMessage
from cqrs.relay.publisher import JetStreamPublisher, ensure_stream
from cqrs.relay.relay import Relay
from cqrs.relay.runner import RelayRunner
from cqrs.relay.subjects import default_subject

__all__ = [
    "Inbox",
    "IncomingMessage",
    "IntegrationEvent",
    "JetStreamPublisher",
    "OutgoingMessage",
    "Relay",
    "RelayRunner",
    "RetryPolicy",
    "default_subject",
    "ensure_stream",
]
