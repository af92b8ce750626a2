"""The append-only log and the migrator / service / runner split, against real PostgreSQL.

Each test gets three new login roles with unique names (cluster-wide objects: safe on
a shared server and in parallel runs) and a schema the migrator owns, migrated by the
migrator and granted by it with ``op.grant_cqrs_roles``; all dropped afterwards.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import attrs
import pytest
from alembic.autogenerate import render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.operations.ops import UpgradeOps
from commands_domain import PlaceOrder, make_bus
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from test_projection_models import (
    HOOKS,
    Marker,
    OrderPlaced,
    OrderSummary,
    build_summary,
    create_read_models,
    store,
)

import cqrs.migrations
from cqrs import EventStore
from cqrs.cli.main import main
from cqrs.config import Settings
from cqrs.errors import InvalidInput
from cqrs.projections.dead_letters import list_dead_letters
from cqrs.projections.runner import ProjectionRunner
from cqrs.roles import CqrsRoles, grant_roles
from cqrs.store import partitions
from cqrs.store.guards import allow_rewrite
from cqrs.testing import schema_engine
from cqrs.testing.conformance import wait_for_horizon

READ_MODEL = OrderSummary.__tablename__
FUTURE_XID = "(pg_current_xact_id()::text::bigint + 1000)::text::xid8"


@attrs.define
class Roles:
    """The three roles' engines on one schema, and the superuser's."""

    schema: str
    names: dict[str, str]
    migrator: Engine
    service: Engine
    runner: Engine
    admin: Engine
    settings: Settings


def _engine_as(url: str, role: str, schema: str) -> Engine:
    as_role = make_url(url).set(username=role, password=None)
    return schema_engine(
        as_role.render_as_string(hide_password=False), schema, public=False, poolclass=NullPool
    )


def _drop_roles(admin: Engine, names: list[str]) -> None:
    with admin.connect() as conn:
        for name in names:
            if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}).first():
                conn.execute(text(f'DROP OWNED BY "{name}" CASCADE'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))


@pytest.fixture(params=["range", "hash"])
def roles(request: pytest.FixtureRequest, cqrs_database_url: str) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    names = {k: f"cqrs_{k}_{suffix}" for k in ("migrator", "service", "runner")}
    schema = f"roles_{suffix}"
    settings = Settings(partitioning=request.param, hash_partitions=4)
    admin = create_engine(cqrs_database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(text(f'CREATE ROLE "{name}" LOGIN'))
        conn.execute(text(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{names["migrator"]}"'))
    engines = {k: _engine_as(cqrs_database_url, v, schema) for k, v in names.items()}
    try:
        with engines["migrator"].connect() as conn:
            assert not conn.execute(text("SELECT rolsuper FROM pg_roles "
                                         "WHERE rolname = current_user")).scalar_one()  # fmt: skip
            cqrs.migrations.upgrade(conn, settings)
            conn.commit()
        create_read_models(engines["migrator"])
        with engines["migrator"].begin() as conn:
            Operations(MigrationContext.configure(conn)).grant_cqrs_roles(  # type: ignore[attr-defined]
                service=names["service"], runner=names["runner"], runner_tables=[READ_MODEL]
            )
        yield Roles(schema, names, admin=admin, settings=settings, **engines)
    finally:
        for engine in engines.values():
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        _drop_roles(admin, list(names.values()))
        admin.dispose()


def _refused(engine: Engine, sql: str, match: str, params: dict[str, object] | None = None) -> None:
    with engine.connect() as conn, pytest.raises(DBAPIError, match=match) as refused:
        conn.execute(text(sql), params or {})
    assert getattr(refused.value.orig, "sqlstate", None) == "42501"  # insufficient_privilege


def _append(engine: Engine, stream_id: str, n: int = 1) -> None:
    events = [OrderPlaced(stream_id, "c-1", Decimal(i)) for i in range(n)]
    with Session(engine) as session, session.begin():
        store().append(session, stream_id, events)


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


# -- the log is append-only, also for its owner --------------------------------------


def test_the_owner_cannot_update_delete_or_truncate_events(roles: Roles) -> None:
    _append(roles.service, "order-1", 2)
    owner = roles.migrator
    _refused(owner, "UPDATE events SET data = '{}'", "events is append-only: UPDATE")
    _refused(owner, "DELETE FROM events", "events is append-only: DELETE")
    _refused(owner, "TRUNCATE events", "events is append-only: TRUNCATE")
    with owner.connect() as conn:
        every = [p.name for p in partitions.list_partitions(conn)]
    holding = [n for n in every if _count(owner, f'SELECT count(*) FROM "{n}"')]
    assert holding
    for name in holding:  # partitions directly: the row trigger is cloned onto them
        _refused(owner, f'DELETE FROM "{name}"', "append-only")
    for name in every:  # TRUNCATE's is added to each (statement triggers are not cloned)
        _refused(owner, f'TRUNCATE "{name}"', "append-only")
    # a superuser too: triggers fire for everyone
    _refused(roles.admin, f'DELETE FROM "{roles.schema}".events', "append-only")
    assert _count(owner, "SELECT count(*) FROM events") == 2


def test_partitions_made_later_are_guarded_too(roles: Roles) -> None:
    with roles.migrator.begin() as conn:
        if roles.settings.partitioning == "range":
            made = partitions.ensure_months(conn, date(2031, 1, 1), 2)
        else:  # the hash layout's partitions are fixed; drop one and make it again
            conn.execute(text("ALTER TABLE events DETACH PARTITION events_h003_of_004"))
            conn.execute(text("DROP TABLE events_h003_of_004"))
            made = partitions.ensure(conn, roles.settings)
    assert made
    for name in made:
        _refused(roles.migrator, f'TRUNCATE "{name}"', "append-only")
    with roles.admin.connect() as conn:  # the row trigger came with ATTACH
        cloned = conn.execute(
            text(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'events_append_only' "
                "AND tgrelid::regclass::text = ANY(:names)"
            ),
            {"names": [f"{roles.schema}.{n}" for n in made]},
        ).scalar_one()
    assert cloned == len(made)


def test_a_sanctioned_rewrite_is_the_owners_only(roles: Roles) -> None:
    _append(roles.service, "order-1")
    with roles.migrator.begin() as conn:  # DELETE granted by mistake: the guard still holds
        conn.execute(text(f'GRANT DELETE, TRUNCATE ON events TO "{roles.names["service"]}"'))
    with roles.service.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        allow_rewrite(conn)  # the setting is honoured for the owner's members only
        conn.execute(text("DELETE FROM events"))
    with roles.migrator.begin() as conn:
        allow_rewrite(conn)
        assert conn.execute(text("DELETE FROM events")).rowcount == 1
        conn.execute(text("TRUNCATE events"))
    with roles.migrator.connect() as conn:  # SET LOCAL: over with its transaction
        conn.execute(text("SELECT 1"))
        conn.commit()
    _refused(roles.migrator, "TRUNCATE events", "append-only")


# -- the service role: no forged positions, streams only forward ----------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("transaction_id", "'1'::xid8"),
        ("global_position", "1"),
        ("recorded_at", "clock_timestamp() - interval '1 day'"),
    ],
)
def test_the_service_cannot_forge_positions(roles: Roles, column: str, value: str) -> None:
    _refused(
        roles.service,
        f"INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, "
        f"{column}) VALUES (gen_random_uuid(), 's-1', 'x', 1, 'x.y', '{{}}', {value})",
        "permission denied for table events",
    )
    _refused(roles.service, "SELECT setval('events_global_position_seq', 1)", "permission denied")
    assert _count(roles.migrator, "SELECT count(*) FROM events") == 0
    # without those columns the defaults apply: the writing transaction's own id
    with roles.service.begin() as conn:
        own, stored = conn.execute(
            text(
                "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data) "
                "VALUES (gen_random_uuid(), 's-1', 'x', 1, 'x.y', '{}') "
                "RETURNING pg_current_xact_id()::text, transaction_id::text"
            )
        ).one()
    assert own == stored


def test_the_service_cannot_move_a_stream_back_or_archive_it(roles: Roles) -> None:
    _append(roles.service, "order-1", 3)
    service = roles.service
    _refused(service, "UPDATE streams SET version = 0", "streams only move forward")
    _refused(service, "UPDATE streams SET last_xid = '3'::xid8", "streams only move forward")
    _refused(
        service,
        f"UPDATE streams SET last_xid = {FUTURE_XID}",  # would block the stream's appends
        "streams only move forward",
    )
    _refused(
        service,
        "INSERT INTO streams (stream_id, stream_type, version, last_xid) "
        f"VALUES ('s-2', 'x', 1, {FUTURE_XID})",
        "streams only move forward",
    )
    _refused(service, "UPDATE streams SET archived = true", "permission denied")
    _refused(service, "UPDATE streams SET stream_type = 'other'", "permission denied")
    _refused(service, "DELETE FROM streams", "permission denied")
    _refused(service, "DELETE FROM events", "permission denied")
    _refused(service, "TRUNCATE events", "permission denied")
    with service.connect() as conn, pytest.raises(DBAPIError, match="permission denied"):
        store().archive(conn, "order-1")
    with roles.migrator.begin() as conn:  # archiving a stream is the migrator's
        store().archive(conn, "order-1")
        allow_rewrite(conn)  # and so is a repair
        conn.execute(text("UPDATE streams SET version = 2 WHERE stream_id = 'order-1'"))
    with roles.migrator.connect() as conn:
        info = store().stream_info(conn, "order-1")
    assert info is not None and (info.version, info.archived) == (2, True)


# -- each role runs its part ---------------------------------------------------------


def test_the_service_appends_reads_and_runs_commands(roles: Roles) -> None:
    service = roles.service
    _append(service, "order-1", 2)
    with Session(service) as session, session.begin():  # expected version, existing stream
        done = store().append(
            session, "order-1", [OrderPlaced("order-1", "c", Decimal(9))], expected_version=2
        )
    wait_for_horizon(service, done.position.transaction_id)  # another test's transaction
    with service.connect() as conn:
        assert [e.version for e in store().read_stream(conn, "order-1")] == [1, 2, 3]
        assert [e.stream_id for e in store().read_all(conn)] == ["order-1"] * 3
    bus = make_bus()
    command = PlaceOrder("order-9", "c-9", Decimal(5), command_id=f"cmd-{uuid.uuid4().hex}")
    with Session(service) as session:
        first = bus.execute(command, session)
    with Session(service) as session:
        again = bus.execute(command, session)  # processed_commands: the first result
    assert first.result == again.result
    with service.connect() as conn:
        placed = EventStore().read_stream(conn, "order-order-9")
    assert [e.version for e in placed] == [1]


def test_the_runner_applies_batches_parks_and_checkpoints(
    roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    _append(roles.service, "order-1")
    with Session(roles.service) as session, session.begin():
        store().append(session, "order-2", [Marker("fail", "order-2")])
    _append(roles.service, "order-3")
    HOOKS["fail"] = {"order-2"}
    try:
        runner = ProjectionRunner(
            roles.runner, [build_summary()], store=store(), listen=False, settings=roles.settings
        )
        runner.run_until_caught_up(timeout=30)
        with caplog.at_level(logging.INFO, logger="cqrs.projections"):
            assert runner.upkeep(force=True) == []  # the migrator's job: skipped, said once
            assert runner.upkeep(force=True) == []
        runner.close()
    finally:
        HOOKS["fail"] = set()
    said = [r for r in caplog.records if "partition upkeep skipped" in r.getMessage()]
    assert len(said) == 1 and roles.names["runner"] in said[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with roles.runner.connect() as conn:
        rows = conn.execute(text(f"SELECT order_id FROM {READ_MODEL} ORDER BY 1")).scalars()
        assert list(rows) == ["order-1", "order-3"]
        checkpoint = conn.execute(text("SELECT global_position FROM checkpoints")).scalar_one()
    assert checkpoint > 0
    assert [d.stream_id for d in list_dead_letters(roles.runner, "order_summary")] == ["order-2"]
    # the runner writes only its own tables
    _refused(roles.runner, "INSERT INTO snapshots (stream_id, aggregate_type, version, state) "
                           "VALUES ('s', 'x', 1, '{}')", "permission denied")  # fmt: skip
    with Session(roles.runner) as session, pytest.raises(DBAPIError, match="permission denied"):
        store().append(session, "order-4", [OrderPlaced("order-4", "c", Decimal(1))])


def test_a_runner_without_partitions_warns_instead_of_failing(
    roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    with roles.migrator.begin() as conn:
        name = partitions.list_partitions(conn)[-1].name
        conn.execute(text(f'ALTER TABLE events DETACH PARTITION "{name}"'))
    runner = ProjectionRunner(
        roles.runner, [build_summary()], store=store(), listen=False, settings=roles.settings
    )
    with caplog.at_level(logging.INFO, logger="cqrs.projections"):
        assert runner.upkeep(force=True) == []
    runner.close()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    if roles.settings.partitioning == "hash":
        assert name in warned[0].getMessage() and "cqrs partitions ensure" in warned[0].getMessage()
    # range: the last partition is months ahead; only this and next month's count
    with roles.migrator.begin() as conn:
        conn.execute(text(f'DROP TABLE "{name}"'))
    runner = ProjectionRunner(roles.migrator, [], settings=roles.settings, listen=False)
    assert runner.upkeep(force=True) == [name]  # the migrator's upkeep makes it again
    runner.close()


def test_the_migrator_runs_upkeep_and_archives(roles: Roles) -> None:
    if roles.settings.partitioning == "hash":
        # hash partitions are never detached or archived: every stream hashes into one
        with roles.migrator.begin() as conn:
            assert partitions.ensure(conn, roles.settings) == []  # upkeep: all there
            name = partitions.list_partitions(conn)[0].name
        with (
            roles.migrator.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
            pytest.raises(InvalidInput, match="hash"),
        ):
            partitions.detach(conn, name, concurrently=True)
        return
    archive_schema = f"{roles.schema}_archive"
    with roles.admin.connect() as conn:  # archiving into a schema needs CREATE there
        conn.execute(text(f'CREATE SCHEMA "{archive_schema}" AUTHORIZATION '
                          f'"{roles.names["migrator"]}"'))  # fmt: skip
    with roles.migrator.begin() as conn:
        old = partitions.ensure_months(conn, date(2020, 1, 1), 1)
        assert old == ["events_y2020m01"]
        assert partitions.ensure(conn, roles.settings) == []
    with roles.migrator.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        partitions.detach(conn, "events_y2020m01", concurrently=True)
    with roles.migrator.begin() as conn:
        done = partitions.archive(conn, "events_y2020m01", schema=archive_schema)
    assert done.destination == f"{archive_schema}.events_y2020m01"
    with roles.admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{archive_schema}" CASCADE'))
    with (
        roles.service.connect() as conn,  # the service cannot retire partitions
        pytest.raises(DBAPIError, match="must be owner"),
        conn.begin(),
    ):
        conn.execute(text("ALTER TABLE events DETACH PARTITION events_y2031m01"))


# -- the SQL itself ------------------------------------------------------------------


def test_grants_are_exact_after_a_broad_grant(roles: Roles) -> None:
    service = roles.names["service"]
    with roles.migrator.begin() as conn:
        conn.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA "{roles.schema}" TO "{service}"'))
        grant_roles(conn, CqrsRoles(service=service, runner=roles.names["runner"]))
    _refused(roles.service, "DELETE FROM streams", "permission denied")
    _append(roles.service, "order-1")


def test_create_and_migrator_hand_over_the_tables(roles: Roles, cqrs_database_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    new = {k: f"cqrs_{k}2_{suffix}" for k in ("migrator", "service", "runner")}
    try:
        superuser = schema_engine(cqrs_database_url, roles.schema, poolclass=NullPool)
        with superuser.begin() as conn:  # may create roles and hand the tables over
            grant_roles(conn, CqrsRoles(create=True, **new))
            owners = conn.execute(
                text(
                    "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                    "WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p')"
                    " AND relname <> 'alembic_version' AND relname NOT LIKE 'pj\\_%'"
                ),
            ).scalars()
            assert set(owners) == {new["migrator"]}
            login = conn.execute(
                text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": new["service"]}
            ).scalar_one()
            assert login is False
        superuser.dispose()
    finally:
        with roles.admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{roles.schema}" CASCADE'))
        _drop_roles(roles.admin, list(new.values()))


def test_role_names_are_checked() -> None:
    with pytest.raises(InvalidInput, match="three different roles"):
        CqrsRoles(service="app", runner="app")
    with pytest.raises(InvalidInput, match="toolkit table"):
        CqrsRoles(service="a", runner="b", runner_tables=["checkpoints"])
    with pytest.raises(InvalidInput, match="not the string"):
        CqrsRoles(service="a", runner="b", runner_tables="order_summary")  # type: ignore[arg-type]


def test_cqrs_roles_sql_prints_the_grants(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["roles", "sql", "--service", "app", "--runner", "run", "--schema", "orders",
                 "--runner-table", "order_summary"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "GRANT SELECT, INSERT (event_id, stream_id, stream_type, version, event_type, " in out
    assert "UPDATE (version, last_xid) ON orders.streams TO app;" in out
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON orders.order_summary TO run;" in out
    (events,) = [line for line in out.splitlines() if "ON orders.events TO app" in line]
    assert "transaction_id" not in events and "recorded_at" not in events


def test_cqrs_roles_grant_runs_as_the_owner(roles: Roles, cqrs_database_url: str) -> None:
    service = roles.names["service"]
    with roles.migrator.begin() as conn:
        conn.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA "{roles.schema}" TO "{service}"'))
    url = (
        make_url(cqrs_database_url)
        .set(username=roles.names["migrator"], password=None)
        .update_query_dict({"options": f"-csearch_path={roles.schema}"})
    )
    code = main(["roles", "grant", "--service", service, "--runner", roles.names["runner"],
                 "--database-url", url.render_as_string(hide_password=False)])  # fmt: skip
    assert code == 0
    _refused(roles.service, "UPDATE streams SET archived = true", "permission denied")


def test_the_operation_renders_and_runs_offline() -> None:
    op = cqrs.migrations.GrantCqrsRolesOp("app", "run", runner_tables=["order_summary"])
    rendered = render_python_code(UpgradeOps(ops=[op]))
    assert "op.grant_cqrs_roles(service='app', runner='run', migrator=None" in rendered
    assert "runner_tables=['order_summary']" in rendered
    out = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="postgresql", opts={"as_sql": True, "output_buffer": out}
    )
    Operations(context).grant_cqrs_roles(service="app", runner="run")  # type: ignore[attr-defined]
    assert "GRANT USAGE ON SCHEMA public TO app, run;" in out.getvalue()
    assert "UPDATE (version, last_xid) ON public.streams TO app;" in out.getvalue()
