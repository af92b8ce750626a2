"""The one progress display (cqrs.cli.progress): a tqdm bar on a terminal, plain lines
elsewhere or without tqdm, nothing with ``--json``."""

from __future__ import annotations

import io
import re
import sys
import threading

import pytest

from cqrs.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fill(bar: Progress, total: int, step: int) -> None:
    for done in range(step, total + 1, step):
        bar.update_to(done, total)
    bar.close()


def test_off_a_terminal_plain_lines_at_each_tenth_and_a_summary() -> None:
    out = io.StringIO()
    _fill(Progress("rebuild summary", unit="events", out=out), 200, 5)
    lines = out.getvalue().splitlines()
    assert lines[:9] == [f"rebuild summary: {20 * n}/200 events ({10 * n}%)" for n in range(1, 10)]
    summary = r"rebuild summary: 200/200 events \(100%\) in [\d.]+s \([\d,]+/s\)"
    assert re.fullmatch(summary, lines[9])
    assert len(lines) == 10 and "\r" not in out.getvalue()


def test_on_a_terminal_a_tqdm_bar() -> None:
    pytest.importorskip("tqdm")
    out = Terminal()
    bar = Progress("rebuild summary", unit="events", out=out)
    assert bar.mode == "bar"
    _fill(bar, 200, 50)
    text = out.getvalue()
    assert "\r" in text and "rebuild summary: 100%" in text and "200/200" in text
    assert "(10%)" not in text  # no plain lines as well


def test_on_a_terminal_without_tqdm_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` now fails
    out = Terminal()
    bar = Progress("rebuild summary", unit="events", out=out)
    assert bar.mode == "lines"
    _fill(bar, 10, 1)
    assert out.getvalue().startswith("rebuild summary: 1/10 events (10%)\n")


@pytest.mark.parametrize("out", [io.StringIO(), Terminal()])
def test_disabled_writes_nothing(out: io.StringIO) -> None:
    bar = Progress("rebuild summary", out=out, enabled=False)
    assert bar.mode == "off"
    _fill(bar, 10, 1)
    assert out.getvalue() == ""


def test_a_counter_without_total_prints_once_at_the_end_and_counts_every_thread() -> None:
    out = io.StringIO()
    with Progress("  parcels", unit="parcels", out=out) as bar:
        threads = [
            threading.Thread(target=lambda: [bar.advance() for _ in range(500)]) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert re.fullmatch(r"  parcels: 2000 parcels in [\d.]+s \([\d,]+/s\)\n", out.getvalue())
