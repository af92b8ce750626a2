"""Public: a real PostgreSQL 16 for an application, with nothing to install but a pip package.

``start(data_dir)`` starts an embedded server whose data lives in ``data_dir``
(created and initialised on first use), or reuses the one already running
there, and answers its SQLAlchemy URL. It comes from the ``pgserver`` package:
``pip install 'sqlalchemy-cqrs[embedded]'``. The server listens on a Unix
socket only (no TCP port), so nothing outside the machine can reach it.

Lifetime: a server this process started stops when the last process using it
exits, unless ``keep_running=True`` (then ``stop(data_dir)``, or ``cqrs
embedded stop DIR``, stops it). A server that was already running is reused and
never stopped by this call. From a shell::

    $ cqrs embedded start .cqrs/pgdata   # prints the URL; the server keeps running
    $ cqrs projections status --embedded .cqrs/pgdata
    $ cqrs embedded stop .cqrs/pgdata

Example::

    >>> import cqrs.embedded
    >>> from sqlalchemy import create_engine
    >>> url = cqrs.embedded.start(".cqrs/pgdata")
    >>> engine = create_engine(url)
    >>> cqrs.embedded.running_url(".cqrs/pgdata") == url
    True

Meant for demos, tests, a developer's machine and small single-machine tools;
a service in production points ``CQRS_DATABASE_URL`` at a managed PostgreSQL.
"""

from __future__ import annotations

import atexit
import os
import signal
import warnings
from pathlib import Path
from typing import Any

from cqrs.config import normalise_url
from cqrs.errors import ConfigurationError

_servers: dict[Path, Any] = {}  # data dir -> pgserver handle, for servers this process uses

PathLike = str | os.PathLike[str]


def _pgserver() -> Any:
    try:
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset on CI
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise ConfigurationError(
            "the embedded PostgreSQL comes from the pgserver package, which is not installed; "
            "pip install 'sqlalchemy-cqrs[embedded]', or name a PostgreSQL instead "
            "(CQRS_DATABASE_URL for programs, CQRS_TEST_DATABASE_URL for the test fixtures)"
        ) from None
    return pgserver


def _postmaster(path: Path) -> Any:
    """pgserver's view of ``path/postmaster.pid`` when that server runs, else ``None``."""
    _pgserver()
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(path)
    return info if info is not None and info.is_running() else None


def _resolve(data_dir: PathLike) -> Path:
    return Path(data_dir).expanduser().resolve()


def start(data_dir: PathLike, *, keep_running: bool = False) -> str:
    """Start (or reuse) the embedded PostgreSQL at ``data_dir``; answer its URL.

    ``data_dir`` and its parents are created when missing. ``keep_running``
    leaves a server this call starts running after the process exits.
    """
    path = _resolve(data_dir)
    if path in _servers:
        return _url(_servers[path])
    pgserver = _pgserver()
    path.mkdir(parents=True, exist_ok=True)
    reused = _postmaster(path) is not None
    if not reused:
        _forget_handles(path)  # pids of processes that died without a goodbye
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(path, cleanup_mode=None if keep_running or reused else "stop")
    _servers[path] = server
    return _url(server)


def running_url(data_dir: PathLike) -> str | None:
    """The URL of the server running at ``data_dir``, or ``None``; starts nothing."""
    info = _postmaster(_resolve(data_dir))
    return None if info is None else normalise_url(info.get_uri())


def stop(data_dir: PathLike, *, timeout: float = 60.0) -> bool:
    """Stop the server running at ``data_dir`` (a fast shutdown: open sessions are
    ended, committed data is kept); ``True`` when one was running."""
    path = _resolve(data_dir)
    server = _servers.pop(path, None)
    if server is not None:
        atexit.unregister(server._cleanup)
    info = _postmaster(path)
    if info is not None:
        info.process.send_signal(signal.SIGINT)
        info.process.wait(timeout)
    _forget_handles(path)
    return info is not None


def _forget_handles(path: Path) -> None:
    """Reset pgserver's bookkeeping for a server that is not running: its list of
    processes using it (which decides who stops it) and its per-process cache.
    pgserver has no public call for this (tests/integration/test_embedded.py
    fails if these private names change)."""
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    with PostgresServer._lock:
        if (path / ".handle_pids.json").exists():
            DiskList(path / ".handle_pids.json").put([])
        PostgresServer._instances.pop(path, None)


def _url(server: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return normalise_url(server.get_uri())
