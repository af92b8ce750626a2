"""Internal: one asyncio event loop on a thread of its own, for sync callers.

``nats-py`` is asyncio; the projection runner, the command bus and
SQLAlchemy sessions are sync. Rather than run a second copy of the runner on
asyncio, the relay and the inbox each own a :class:`LoopThread`: a daemon
thread running an event loop that holds the NATS connection, and sync code
hands it one coroutine at a time and blocks on the answer::

    loop = LoopThread("cqrs-relay")
    ack = loop.run(js.publish("orders.placed", b"{}"), timeout=5.0)
    loop.close()

Every NATS object is created and used on that one loop, so nothing of
nats-py is ever touched from two threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A running event loop on a daemon thread; ``run`` submits a coroutine and waits."""

    def __init__(self, name: str = "cqrs-nats") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop; its result, or its exception raised here.

        On ``timeout`` the coroutine is cancelled and ``TimeoutError`` raised.
        """
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"gave up after {timeout}s") from None

    def close(self) -> None:
        """Stop the loop and join its thread (idempotent)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self.loop.close()
