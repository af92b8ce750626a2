"""Internal: ``python -m cqrs.testing.createdb URL`` creates the URL's database when missing.

``make pytest-system`` runs the suite in a database of its own (``cqrs_test``)
on the system PostgreSQL rather than in ``postgres``; this makes it on first use.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sqlalchemy import create_engine, make_url, text

from cqrs.config import normalise_url
from cqrs.redact import mask_url
from cqrs.sqlnames import statement


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names unless it exists; ``True`` when it was created.

    Connects to the server's ``postgres`` database to do so.
    """
    target = make_url(normalise_url(url))
    name = target.database
    if not name:
        raise SystemExit(f"cqrs.testing.createdb: '{mask_url(url)}' names no database")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if found:
                return False
            conn.execute(statement(conn, "CREATE DATABASE {name}", name=name))
            return True
    finally:
        admin.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m cqrs.testing.createdb URL", file=sys.stderr)
        return 2
    if ensure_database(args[0]):
        print(f"created database {make_url(normalise_url(args[0])).database}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
