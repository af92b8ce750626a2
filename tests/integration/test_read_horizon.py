"""The read horizon is this database's: a transaction open in another database of the
same server (another service, a batch job, another test run) holds no reader here,
for a superuser and for an application role without any statistics privilege; one
open in this database does, and ``horizon_holder`` names it, prepared or not."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from test_projection_models import (
    OrderPlaced,
    append,
    build_summary,
    create_read_models,
    store,
    summary_rows,
)

from cqrs import START
from cqrs.cli.main import main
from cqrs.errors import ReadModelTimeout
from cqrs.projections import ProjectionRunner, horizon_holder, wait_for
from cqrs.store.horizon import horizon
from cqrs.testing import isolated_schema, schema_engine


def _schema(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT current_schema()")).scalar_one())


def test_read_all_is_not_held_back_by_another_database(
    log_engine: Engine, other_database: Any
) -> None:
    with other_database.open_transaction() as (_, foreign_xid):
        result = append(log_engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
        assert result.position.transaction_id > foreign_xid  # PostgreSQL's xmin would stop here
        with log_engine.connect() as conn:
            events = store().read_all(conn, after=START)
            assert [e.stream_id for e in events] == ["order-1"]
            assert horizon(conn) > result.position.transaction_id
        assert horizon_holder(log_engine) is None


def test_runner_and_wait_for_are_not_held_back_by_another_database(
    cqrs_engine: Engine, other_database: Any
) -> None:
    create_read_models(cqrs_engine)
    summary = build_summary()
    runner = ProjectionRunner(cqrs_engine, [summary], store=store(), listen=False)
    with other_database.open_transaction():
        result = append(cqrs_engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
        assert runner.run_until_caught_up(timeout=10) == 1
        wait_for(cqrs_engine, summary, result.position, timeout=10)
    runner.close()
    assert [r[0] for r in summary_rows(cqrs_engine)] == ["order-1"]


def test_a_transaction_of_this_database_holds_readers_and_is_named(
    cqrs_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    create_read_models(cqrs_engine)
    summary = build_summary()
    runner = ProjectionRunner(cqrs_engine, [summary], store=store(), listen=False)
    with Session(cqrs_engine) as held:
        held.execute(text("SELECT pg_current_xact_id()"))  # a writing transaction
        pid = held.execute(text("SELECT pg_backend_pid()")).scalar_one()
        database = held.execute(text("SELECT current_database()")).scalar_one()
        result = append(cqrs_engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
        holder = horizon_holder(cqrs_engine)
        assert holder is not None
        assert (holder.pid, holder.database, holder.state) == (pid, database, "idle in transaction")
        assert holder.transaction_id < result.position.transaction_id
        with pytest.raises(ReadModelTimeout, match=f"pid {pid}") as timed_out:
            wait_for(cqrs_engine, summary, result.position, timeout=0.3)
        assert timed_out.value.holder == holder or timed_out.value.holder.pid == pid
        with pytest.raises(ReadModelTimeout, match=f"in database '{database}'"):
            runner.run_until_caught_up(timeout=0.3)
        url = cqrs_engine.url.update_query_dict(
            {"options": f"-csearch_path={_schema(cqrs_engine)}"}
        ).render_as_string(hide_password=False)
        code = main(["projections", "status", "--database-url", url, "--json", "--min-age", "0"])
        shown = json.loads(capsys.readouterr().out)["horizon_holder"]
        assert code == 0 and (shown["pid"], shown["database"]) == (pid, database)
        held.rollback()
    assert runner.run_until_caught_up(timeout=10) == 1
    runner.close()


@contextmanager
def role_engine(owner: Engine, *privileges: str) -> Iterator[Engine]:
    """An engine on ``owner``'s schema for a new role holding only ``privileges``
    there (no pg_read_all_stats, not a superuser): what a service usually runs as.
    The role is dropped afterwards."""
    role = f"cqrs_app_{uuid.uuid4().hex[:8]}"
    schema = _schema(owner)
    with owner.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        for privilege in privileges:
            conn.execute(text(f'GRANT {privilege} IN SCHEMA "{schema}" TO "{role}"'))
    url = make_url(owner.url.render_as_string(hide_password=False)).set(
        username=role, password=None
    )
    engine = schema_engine(url.render_as_string(hide_password=False), schema, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert not conn.execute(text("SELECT rolsuper FROM pg_roles "
                                         "WHERE rolname = current_user")).scalar_one()  # fmt: skip
        yield engine
    finally:
        engine.dispose()
        with owner.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


@pytest.fixture
def app_role(cqrs_engine: Engine) -> Iterator[Engine]:
    """A role that appends and reads the log (table and sequence grants only)."""
    with role_engine(
        cqrs_engine,
        "SELECT, INSERT, UPDATE ON ALL TABLES",
        "USAGE ON ALL SEQUENCES",
    ) as engine:
        yield engine


def test_an_application_role_sees_past_other_databases_and_names_holders(
    log_engine: Engine, other_database: Any
) -> None:
    with (
        role_engine(log_engine, "SELECT ON ALL TABLES") as reader,
        other_database.open_transaction(),
    ):
        append(log_engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
        with reader.connect() as conn:
            assert [e.stream_id for e in store().read_all(conn)] == ["order-1"]
        assert horizon_holder(reader) is None
        with Session(log_engine) as held:  # a superuser's transaction, in this database
            held.execute(text("SELECT pg_current_xact_id()"))
            pid = held.execute(text("SELECT pg_backend_pid()")).scalar_one()
            seen = horizon_holder(reader)
            assert seen is not None and seen.pid == pid and seen.database is not None
            # Without pg_read_all_stats the role sees who, not what or since when.
            assert (seen.state, seen.query, seen.age_seconds) == (None, None, None)
            assert "state hidden" in seen.describe()
            held.rollback()


def test_an_application_role_appends_and_runs_projections(
    app_role: Engine, cqrs_engine: Engine, other_database: Any
) -> None:
    create_read_models(cqrs_engine)
    schema = _schema(cqrs_engine)
    with cqrs_engine.begin() as conn:  # the read model made after the grants
        conn.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO '
                          f'"{app_role.url.username}"'))  # fmt: skip
    summary = build_summary()
    with other_database.open_transaction():
        result = append(app_role, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
        runner = ProjectionRunner(app_role, [summary], store=store(), listen=False)
        assert runner.run_until_caught_up(timeout=10) == 1
        runner.close()
        wait_for(app_role, summary, result.position, timeout=10)


# -- prepared transactions -----------------------------------------------------


@pytest.fixture(scope="module")
def prepared_url(cqrs_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that allows prepared transactions: the test server when it does, else
    an embedded PostgreSQL of this module's own with ``max_prepared_transactions``."""
    probe = create_engine(cqrs_database_url, poolclass=NullPool)
    with probe.connect() as conn:
        allowed = int(conn.execute(text("SHOW max_prepared_transactions")).scalar_one())
    probe.dispose()
    if allowed > 0:
        yield cqrs_database_url
        return
    from cqrs import embedded

    data = tmp_path_factory.mktemp("prepared") / "pgdata"
    url = embedded.start(data)
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET max_prepared_transactions = 8"))
    admin.dispose()
    embedded.stop(data)
    try:
        yield embedded.start(data)
    finally:
        embedded.stop(data)


def _prepare(engine: Engine, gid: str) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_current_xact_id()"))  # a writing transaction
        conn.execute(text(f"PREPARE TRANSACTION '{gid}'"))
        conn.commit()  # SQLAlchemy's view of the transaction ends; PostgreSQL's stays prepared


def _finish(engine: Engine, gid: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"ROLLBACK PREPARED '{gid}'"))


def test_prepared_transactions_elsewhere_are_ignored_and_here_are_named(
    prepared_url: str, other_database_on: Any
) -> None:
    other = other_database_on(prepared_url)
    try:
        with isolated_schema(prepared_url) as engine:
            gid = f"cqrs-{uuid.uuid4().hex[:8]}"
            _prepare(other.engine, gid)
            try:
                result = append(engine, "order-1", OrderPlaced("order-1", "c", Decimal(1)))
                with engine.connect() as conn:
                    assert [e.stream_id for e in store().read_all(conn)] == ["order-1"]
                assert horizon_holder(engine) is None
            finally:
                _finish(other.engine, gid)

            here = f"cqrs-{uuid.uuid4().hex[:8]}"
            _prepare(engine, here)
            try:
                later = append(engine, "order-2", OrderPlaced("order-2", "c", Decimal(2)))
                with engine.connect() as conn:
                    assert store().read_all(conn, after=result.position) == []
                holder = horizon_holder(engine)
                assert holder is not None
                assert (holder.gid, holder.state, holder.pid) == (here, "prepared", None)
                assert holder.transaction_id < later.position.transaction_id
                assert holder.age_seconds is not None and holder.age_seconds >= 0
                assert f"prepared transaction '{here}'" in holder.describe()
            finally:
                _finish(engine, here)
            with engine.connect() as conn:
                assert [e.stream_id for e in store().read_all(conn, after=result.position)] == [
                    "order-2"
                ]
    finally:
        other.close()


def test_a_writing_transaction_never_reads_its_own_events_from_the_log(
    log_engine: Engine,
) -> None:
    """``read_all`` returns committed events only, also inside the transaction that
    wrote: its own events are not committed, and a newer transaction ending
    elsewhere (which moves the snapshot's ``xmax`` past the writer's own id, an
    id PostgreSQL never lists as in progress to its own snapshot) changes nothing.
    Reading them there would let a reader's cursor pass an older transaction
    still in progress."""
    older = append(log_engine, "order-0", OrderPlaced("order-0", "c", Decimal(1)))
    with Session(log_engine) as session, session.begin():
        mine = store().append(session, "order-1", [OrderPlaced("order-1", "c", Decimal(2))])
        newer = append(log_engine, "order-2", OrderPlaced("order-2", "c", Decimal(3)))
        assert newer.position.transaction_id > mine.position.transaction_id
        seen = [e.stream_id for e in store().read_all(session, after=START)]
        assert seen == ["order-0"]
        assert horizon(session.connection()) == mine.position.transaction_id
        assert older.position.transaction_id < mine.position.transaction_id
    with log_engine.connect() as conn:
        seen = [e.stream_id for e in store().read_all(conn, after=START)]
        assert seen == ["order-0", "order-1", "order-2"]
