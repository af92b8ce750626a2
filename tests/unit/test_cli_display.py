"""Human output of the CLI."""

from __future__ import annotations

from cqrs.cli.projections import _shown
from cqrs.events.model import Position
from cqrs.projections.sql import MAX_POSITION


def test_drained_checkpoint_reads_as_end() -> None:
    assert _shown(Position(812, MAX_POSITION)) == "812:end"
    assert _shown(Position(812, 40)) == "812:40"
