"""Internal: how far a runner batch reads ahead, after the batch before it."""

from __future__ import annotations

from cqrs.projections.batch import SCAN_AHEAD, Outcome, next_scan


def test_a_projection_that_handles_everything_reads_its_limit() -> None:
    assert next_scan(Outcome(True, applied=500, scanned=500), 500) == 500
    assert next_scan(Outcome(True, applied=3, scanned=3), 500) == 500  # caught up


def test_skipped_events_widen_the_next_window_in_proportion() -> None:
    assert next_scan(Outcome(True, applied=250, scanned=500), 500) == 1000
    assert next_scan(Outcome(True, applied=99, parked=1, scanned=1000), 500) == 5000


def test_the_window_is_capped() -> None:
    assert next_scan(Outcome(True, applied=1, scanned=500), 500) == 500 * SCAN_AHEAD
    assert next_scan(Outcome(True, applied=0, scanned=500), 500) == 500 * SCAN_AHEAD


def test_no_window_read_starts_over_at_the_limit() -> None:
    assert next_scan(Outcome(locked=False), 500) == 500
    assert next_scan(Outcome(True), 500) == 500
