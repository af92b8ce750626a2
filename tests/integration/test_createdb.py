"""``make pytest-system`` makes its own database with ``cqrs.testing.createdb``, once."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, make_url, text

from cqrs.testing.createdb import ensure_database, main


def test_creates_a_missing_database_once(cqrs_database_url: str) -> None:
    name = f"cqrs_createdb_{uuid.uuid4().hex[:8]}"
    url = make_url(cqrs_database_url).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(cqrs_database_url, isolation_level="AUTOCOMMIT")
    try:
        assert ensure_database(url) is True
        assert main([url]) == 0  # exists now: nothing to do
        assert ensure_database(url) is False
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar() == name
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
