"""Internal: the third contestant, the ``eventsourcing`` library (9.5, PostgreSQL persistence).

Used the way its documentation shows: an ``Application`` on
``eventsourcing.postgres`` (psycopg 3), an ``Aggregate`` whose methods trigger
events, ``app.save`` for writes (one transaction per call, the table locked
for gap-free notification ids), ``app.repository.get`` to load,
``recorder.select_notifications`` plus ``mapper.to_domain_event`` to read the
log, and a ``PostgresTrackingRecorder`` subclass as a projection's view (its
writes and the tracking row in one transaction). Its tables go in the
scenario's schema. Installed with the ``bench`` extra; :func:`available`
says whether it is::

    app = make_app(url, schema)
    account = Account("acct-1", AMOUNT, "EUR", "ref-1", STAMP)
    app.save(account)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg

from benchmarks.raw import conninfo


def available() -> bool:
    """Whether the ``eventsourcing`` library is installed (``pip install -e '.[bench]'``)."""
    return importlib.util.find_spec("eventsourcing") is not None


def env_for(url: str, schema: str, **extra: str) -> dict[str, str]:
    """The library's configuration (it reads an environment mapping) for ``url``."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo(url))
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(info.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(info.get("host") or "localhost"),
        "POSTGRES_PORT": str(info.get("port") or "5432"),
        "POSTGRES_USER": str(info.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(info.get("password") or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": "2",
        "CREATE_TABLE": "yes",
    }
    env.update(extra)
    return env


if available():
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
    from eventsourcing.persistence import Tracking
    from eventsourcing.postgres import PostgresTrackingRecorder

    class Account(Aggregate):
        """An account whose every event carries a deposit (the cqrs ``Deposited`` fields)."""

        @event("Opened")
        def __init__(
            self, account_id: str, amount: Decimal, currency: str, reference: str, at: Any
        ) -> None:
            self.account_id = account_id
            self.deposits = 1

        @event("Deposited")
        def deposit(
            self, account_id: str, amount: Decimal, currency: str, reference: str, at: Any
        ) -> None:
            self.deposits += 1

    class Bank(Application[Any]):
        """The application the benchmarks write through."""

    class BalanceView(PostgresTrackingRecorder):
        """A projection's view: the upsert read model plus the library's tracking row."""

        def __init__(self, datastore: Any, *, table: str, **kwargs: Any) -> None:
            super().__init__(datastore, **kwargs)
            self.table = table
            self.upsert = (
                f"INSERT INTO {table} (account_id, amount, currency, last_ref, version) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_id) DO UPDATE SET "
                "amount = EXCLUDED.amount, currency = EXCLUDED.currency, "
                "last_ref = EXCLUDED.last_ref, version = EXCLUDED.version"
            )

        def apply_batch(self, rows: Sequence[tuple[Any, ...]], tracking: Tracking) -> None:
            """The rows (one ``executemany``) and the tracking row, in one transaction."""
            with self.datastore.transaction(commit=True) as curs:
                curs.executemany(self.upsert, rows)
                self._insert_tracking(curs, tracking)

    def make_app(url: str, schema: str, *, create: bool = True) -> Bank:
        """A ``Bank`` on ``url``, its tables in ``schema`` (created unless ``create=False``).

        Processes started after the tables exist pass ``create=False``: the
        library's ``CREATE OR REPLACE FUNCTION`` run concurrently clashes.
        """
        return Bank(env=env_for(url, schema, CREATE_TABLE="yes" if create else "no"))

    def make_view(app: Bank, url: str, schema: str, table: str) -> BalanceView:
        """A view over ``table`` (which must exist) sharing the application's datastore."""
        recorder: Any = app.recorder
        view = BalanceView(
            recorder.datastore, table=f'"{schema}".{table}', tracking_table_name=f"{table}_tracking"
        )
        view.create_table()
        return view

    def project(app: Bank, view: BalanceView, batch: int) -> int:
        """Replay the application's log into the view from scratch; the events applied.

        Pages of ``batch`` notifications, decoded into domain events by the
        mapper; each page's upserts and its tracking go in one transaction.
        """
        with view.datastore.transaction(commit=True) as curs:
            curs.execute(
                f'TRUNCATE {view.table}, "{view.datastore.schema}".{view.tracking_table_name}'
            )
        after, done = 0, 0
        while notes := app.recorder.select_notifications(after, batch, inclusive_of_start=False):
            rows = []
            for note in notes:
                e: Any = app.mapper.to_domain_event(note)
                rows.append((e.account_id, e.amount, e.currency, e.reference, e.originator_version))
            after = notes[-1].id
            view.apply_batch(rows, Tracking(app.name, after))
            done += len(rows)
        return done
