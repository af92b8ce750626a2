"""Public: test helpers: a real PostgreSQL, isolated schemas, pytest fixtures."""

from cqrs.testing.database import database_url, embedded_url, isolated_schema, schema_engine

__all__ = ["database_url", "embedded_url", "isolated_schema", "schema_engine"]
