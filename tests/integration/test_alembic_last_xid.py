"""Revision ``cqrs_0002`` on a log that already holds events: every stream gets a
``last_xid`` above its events' transaction ids without a table rewrite, and an
append from a transaction that had written before the upgrade is refused."""

from __future__ import annotations

from alembic_support import empty_schema
from sqlalchemy import text
from sqlalchemy.orm import Session

import cqrs.migrations
from cqrs import NO_STREAM, Event, EventRegistry, EventStore, event
from cqrs.errors import AppendOrderConflict

registry = EventRegistry()
OLD_STREAM = "INSERT INTO streams (stream_id, stream_type, version) VALUES ('old-1', 'old', 2)"
OLD_EVENTS = (
    "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data) VALUES "
    "(gen_random_uuid(), 'old-1', 'old', 1, 'migration.noted', '{\"n\": 1}'), "
    "(gen_random_uuid(), 'old-1', 'old', 2, 'migration.noted', '{\"n\": 2}')"
)


@event("migration.noted", registry=registry)
class Noted(Event):
    n: int


def test_existing_streams_get_a_last_xid_above_their_events(cqrs_database_url: str) -> None:
    store = EventStore(registry=registry)
    with empty_schema(cqrs_database_url) as engine:
        with engine.connect() as conn:
            cqrs.migrations.upgrade(conn, revision="cqrs_0001")
            conn.commit()
        # A transaction that wrote before the upgrade, older than writes that ended
        # before it: the upgrade sets last_xid above them, so it is refused.
        with engine.connect() as early:
            early.execute(text("SELECT pg_current_xact_id()"))
            with engine.begin() as conn:  # appends as cqrs_0001 knew them
                conn.execute(text(OLD_STREAM))
                conn.execute(text(OLD_EVENTS))
            with engine.connect() as conn:
                relfile = conn.execute(text("SELECT pg_relation_filenode('streams')")).scalar()
                cqrs.migrations.upgrade(conn)
                conn.commit()
                assert (
                    conn.execute(text("SELECT pg_relation_filenode('streams')")).scalar() == relfile
                )  # no rewrite
                above = conn.execute(
                    text("SELECT bool_and(s.last_xid > e.transaction_id) FROM streams s "
                         "JOIN events e USING (stream_id)")
                ).scalar()  # fmt: skip
                assert above is True
                default = conn.execute(
                    text("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef d JOIN pg_attribute a "
                         "ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
                         "WHERE a.attrelid = 'streams'::regclass AND a.attname = 'last_xid'")
                ).scalar()  # fmt: skip
                assert default == "pg_current_xact_id()"
            try:
                store.append(early, "old-1", [Noted(3)], expected_version=2)
            except AppendOrderConflict:
                early.rollback()
            else:  # pragma: no cover - the assertion below explains
                raise AssertionError("an append from before the upgrade was let through")
        with Session(engine) as session, session.begin():
            store.append(session, "old-1", [Noted(3)], expected_version=2)
            store.append(session, "new-1", [Noted(1)], expected_version=NO_STREAM)
        with engine.connect() as conn:
            assert [e.version for e in store.read_all(conn) if e.stream_id == "old-1"] == [1, 2, 3]
            cqrs.migrations.downgrade(conn, revision="cqrs_0001")
            columns = conn.execute(
                text("SELECT column_name FROM information_schema.columns "
                     "WHERE table_name = 'streams' AND table_schema = current_schema()")
            ).scalars().all()  # fmt: skip
            assert "last_xid" not in columns
            conn.commit()
