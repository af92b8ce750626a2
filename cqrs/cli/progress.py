"""Public: one progress display for the command line and the demo: a ``tqdm`` bar on a
terminal, plain lines anywhere else, nothing at all for ``--json``.

``tqdm`` comes with the ``cli`` extra (``pip install 'sqlalchemy-cqrs[cli]'``);
without it, or when the stream is not a terminal (a pipe, a log file, CI),
the display falls back to plain lines: one at every tenth of a known total
and a summary at the end. Safe to advance from several threads::

    with Progress("rebuild order_summary", unit="events") as bar:
        rebuild(engine, summary, progress=bar.update_to)     # (done, total) callback

    bar = Progress("orders", total=1000)
    bar.advance()                                            # one more done
    bar.close()
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress"]


def _tqdm() -> Any:
    """The ``tqdm`` class, or ``None`` when the package is missing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """A progress display of ``label`` on ``out`` (default: stderr).

    ``total`` may be unknown (``None``): the display is then a counter. With
    ``enabled=False`` (``--json``) nothing is written at all. ``plain=True``
    forces the plain lines even on a terminal.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "",
        out: TextIO | None = None,
        enabled: bool = True,
        plain: bool = False,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.out = out or sys.stderr
        self.done = 0
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._step = 0  # tenths of the total already reported as plain lines
        self._closed = False
        tqdm = _tqdm() if enabled and not plain and _isatty(self.out) else None
        self._bar: Any = None
        if tqdm is not None:
            # tqdm draws nothing on a terminal that reports no size (a bare pty, some
            # containers): give it 80 x 24 there
            size: dict[str, Any] = (
                {"dynamic_ncols": True} if _sized(self.out) else {"ncols": 80, "nrows": 24}
            )
            self._bar = tqdm(
                total=total, desc=label, unit=f" {unit}" if unit else "it", file=self.out,
                leave=True, **size,
            )  # fmt: skip
        self.mode = "off" if not enabled else "bar" if self._bar is not None else "lines"

    def advance(self, n: int = 1) -> None:
        """``n`` more done."""
        with self._lock:
            self._move(self.done + n, self.total)

    def update_to(self, done: int, total: int | None = None) -> None:
        """``done`` of ``total`` (the shape of ``rebuild``'s ``progress`` callback)."""
        with self._lock:
            self._move(done, self.total if total is None else total)

    def close(self) -> None:
        """End the display: the bar's last state, or the summary line."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._bar is not None:
                self._bar.close()
            elif self.mode == "lines":
                seconds = time.perf_counter() - self._started
                rate = self.done / seconds if seconds > 0 else 0.0
                self._line(f"{self._count()} in {seconds:.1f}s ({rate:,.0f}/s)")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- drawing -----------------------------------------------------------------------

    def _move(self, done: int, total: int | None) -> None:
        if self._closed:
            return
        if self._bar is not None:
            if total != self._bar.total:
                self._bar.total = total
            self._bar.update(done - self.done)
        self.done, self.total = done, total
        if self.mode == "lines" and total:
            step = min(10, 10 * done // total)
            if step > self._step and step < 10:  # the end is close()'s summary line
                self._step = step
                self._line(self._count())

    def _count(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if not self.total:
            return f"{self.done}{unit}"
        return f"{self.done}/{self.total}{unit} ({100 * self.done // self.total}%)"

    def _line(self, text: str) -> None:
        self.out.write(f"{self.label}: {text}\n")
        self.out.flush()


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream
        return False


def _sized(out: TextIO) -> bool:
    """Whether the terminal reports its size (columns and lines)."""
    try:
        size = os.get_terminal_size(out.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return size.columns > 0 and size.lines > 0
