"""Internal: the typed refusal of an async engine handed to a sync API.

``create_async_engine(url).sync_engine`` is an ``Engine`` whose statements only
run inside SQLAlchemy's greenlet bridge (``AsyncSession.run_sync``,
``AsyncConnection.run_sync``); anywhere else the first statement raises
``MissingGreenlet``, far from the mistake. The sync APIs call
:func:`require_sync` first, so the mistake is named where it is made::

    >>> from sqlalchemy.ext.asyncio import create_async_engine
    >>> engine = create_async_engine("postgresql+psycopg://localhost/x")
    >>> require_sync(engine.sync_engine, "QueryBus", "use cqrs.AsyncQueryBus")
    Traceback (most recent call last):
    ...
    cqrs.errors.AsyncBindError: QueryBus is a sync API and was given ...

Inside ``run_sync`` the same objects are fine and pass.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cqrs.errors import AsyncBindError, ConfigurationError


def in_greenlet_bridge() -> bool:
    """Whether the caller runs inside SQLAlchemy's greenlet bridge (``run_sync``)."""
    try:
        import greenlet
    except ImportError:
        return False
    current = greenlet.getcurrent()
    if getattr(current, "__sqlalchemy_greenlet_provider__", False):
        return True
    # Before that marker (SQLAlchemy 2.0.0, the floor), the bridge's greenlet class:
    return type(current).__name__ == "_AsyncIoGreenlet"


def _a(kind: str) -> str:
    return f"{'an' if kind[0].lower() in 'aeiou' else 'a'} {kind}"


def _describe(bind: Any) -> str | None:
    """What ``bind`` is when it cannot serve a sync API here, else ``None``."""
    kind = type(bind).__name__
    if type(bind).__module__.startswith("sqlalchemy.ext.asyncio"):
        return _a(kind)  # AsyncEngine, AsyncConnection, AsyncSession, async_sessionmaker
    inner = None
    if isinstance(bind, Session):
        inner = bind.bind
    elif isinstance(bind, sessionmaker):
        inner = bind.kw.get("bind")
    if inner is not None:
        found = _describe(inner)
        return None if found is None else f"{_a(kind)} bound to {found}"
    dialect = getattr(bind, "dialect", None)
    if getattr(dialect, "is_async", False) and not in_greenlet_bridge():
        return f"{_a(kind)} on the async driver (an AsyncEngine's sync_engine)"
    return None


def require_sync(bind: Any, api: str, instead: str) -> None:
    """Raise :class:`~cqrs.errors.AsyncBindError` when ``bind`` (an engine, connection,
    session or sessionmaker) is async and the caller is not inside ``run_sync``.

    ``api`` names the sync API; ``instead`` says what to use under asyncio.
    """
    given = _describe(bind)
    if given is not None:
        raise AsyncBindError(api, given, instead)


def asyncio_ext(api: str) -> ModuleType:
    """``sqlalchemy.ext.asyncio``, imported on first use so that ``import cqrs`` never
    needs greenlet; without it a ``ConfigurationError`` names the ``asyncio`` extra."""
    try:
        import greenlet  # noqa: F401  # every AsyncSession / AsyncConnection call needs it
        import sqlalchemy.ext.asyncio
    except ImportError:
        raise ConfigurationError(
            f"{api} runs on SQLAlchemy's asyncio extension, which needs the greenlet "
            "package, and it is not installed; pip install 'sqlalchemy-cqrs[asyncio]'"
        ) from None
    return sqlalchemy.ext.asyncio
