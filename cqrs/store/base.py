"""Public: the declarative base and ``MetaData`` that hold every toolkit table.

Merge the toolkit's tables into your Alembic autogenerate by listing
``cqrs.metadata`` next to your own::

    target_metadata = [Base.metadata, cqrs.metadata]
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import UserDefinedType

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id type, read as ``int``."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"

    def bind_processor(self, dialect: Any) -> Any:
        return lambda value: None if value is None else str(value)

    def bind_expression(self, bindvalue: Any) -> Any:
        from sqlalchemy import cast

        return cast(bindvalue, self)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        return lambda value: None if value is None else int(value)


class StoreBase(DeclarativeBase):
    """Declarative base of the toolkit's own tables (not of your read models)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
