"""Public: a second service, analytics: it receives the shop's order events over NATS
JetStream through an inbox, into its own tables (``examples.analytics.service``)."""
