"""Public: the wake-up hint: a coalesced ``NOTIFY`` sent after commit, and its listener.

``NOTIFY`` inside the append transaction serialises commits (PostgreSQL takes
a global lock on the notification queue at commit), so the store never sends
it. Writers install a hook that pokes one background thread per process
*after* their commit; the thread sends one ``pg_notify`` for any number of
pokes that piled up meanwhile. The runner listens, and polls anyway: a lost
hint costs one poll interval, never an event::

    notifier = install_notify(SessionFactory, engine=engine)  # after_commit hook
    ...
    notifier.close()
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from cqrs.config import DEFAULT_NOTIFY_CHANNEL, check_notify_channel
from cqrs.redact import mask_url, printable
from cqrs.sqlnames import render

DEFAULT_CHANNEL = DEFAULT_NOTIFY_CHANNEL

log = logging.getLogger("cqrs.projections.notify")


class Notifier:
    """One background thread per process that sends coalesced ``pg_notify`` hints.

    ``channel`` is checked up front (:func:`cqrs.config.check_notify_channel`). A
    hint that fails is logged as a warning (once until hints go out again) and
    counted in ``failed``; the runner's polling covers for it.
    """

    def __init__(self, engine: Engine, channel: str = DEFAULT_CHANNEL) -> None:
        self.engine = engine
        self.channel = check_notify_channel(channel)
        self.sent = 0
        self.failed = 0
        self._flag = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="cqrs-notify", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Ask for a hint to be sent soon; many pokes make one notification."""
        self._flag.set()

    def close(self) -> None:
        """Stop the thread (pending pokes are sent first)."""
        self._closed = True
        self._flag.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        conn = None
        failing = False
        while True:
            self._flag.wait()
            self._flag.clear()
            if self._closed and conn is None:
                return
            try:
                if conn is None:
                    conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text("SELECT pg_notify(:c, '')"), {"c": self.channel})
                self.sent += 1
                failing = False
            except Exception as exc:
                # A hint is only a hint: the runner polls. Say so, drop the connection, go on.
                self.failed += 1
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                (log.debug if failing else log.warning)(
                    "wake-up hint on channel %s not sent (%s); runners fall back to polling",
                    printable(self.channel), printable(mask_url(first)),
                )  # fmt: skip
                failing = True
                if conn is not None:
                    conn.invalidate()
                    conn.close()
                conn = None
            if self._closed:
                if conn is not None:
                    conn.close()
                return


def install_notify(
    target: sessionmaker[Any] | type[Session] | Session | Engine,
    channel: str = DEFAULT_CHANNEL,
    *,
    engine: Engine | None = None,
) -> Notifier:
    """Send a coalesced wake-up hint after every commit of ``target``.

    ``target`` is a ``sessionmaker``, a ``Session`` class or instance (hooked on
    ``after_commit``, which fires once the commit is durable), or an ``Engine``
    (hooked on its connections' ``commit``). The hint goes out from a
    background thread on ``engine`` (default: the sessionmaker's or engine's own).
    """
    if isinstance(target, Engine):
        notifier = Notifier(engine or target, channel)
        event.listen(target, "commit", lambda conn: notifier.poke())
        return notifier
    bind = engine
    if bind is None and isinstance(target, sessionmaker):
        candidate = target.kw.get("bind")
        bind = candidate if isinstance(candidate, Engine) else None
    if bind is None and isinstance(target, Session) and isinstance(target.bind, Engine):
        bind = target.bind
    if bind is None:
        from cqrs.errors import ConfigurationError

        raise ConfigurationError(
            "install_notify cannot tell which database to notify; pass engine=your_engine"
        )
    notifier = Notifier(bind, channel)
    event.listen(target, "after_commit", lambda session: notifier.poke())
    return notifier


class Listener:
    """``LISTEN`` on a dedicated psycopg connection; ``wait`` blocks for a hint or a timeout."""

    def __init__(self, engine: Engine, channel: str = DEFAULT_CHANNEL) -> None:
        check_notify_channel(channel)
        raw = engine.raw_connection()
        driver: Any = raw.driver_connection
        raw.detach()  # the pool forgets it: it stays LISTENing until close()
        self._driver = driver
        self._driver.autocommit = True
        self._driver.execute(render(engine, "LISTEN {channel}", channel=channel))

    def wait(self, timeout: float) -> bool:
        """``True`` when a notification came within ``timeout`` seconds."""
        got = False
        for _ in self._driver.notifies(timeout=timeout, stop_after=1):
            got = True
        return got

    def close(self) -> None:
        try:
            self._driver.close()
        except Exception:  # pragma: no cover - closing a dead connection
            return
