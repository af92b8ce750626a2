"""Human output of the CLI: checkpoint tokens and tables."""

from __future__ import annotations

import pytest

from cqrs.cli.common import checkpoint_token, parse_checkpoint, table
from cqrs.errors import InvalidInput
from cqrs.events.model import Position
from cqrs.projections.sql import MAX_POSITION


def test_drained_checkpoint_reads_as_end() -> None:
    assert checkpoint_token(Position(812, MAX_POSITION)) == "812:end"
    assert checkpoint_token(Position(812, 40)) == "812:40"


@pytest.mark.parametrize("position", [Position(812, MAX_POSITION), Position(3, 9), Position(0, 0)])
def test_checkpoint_tokens_read_back(position: Position) -> None:
    assert parse_checkpoint(checkpoint_token(position)) == position


@pytest.mark.parametrize("token", ["end", "812", "812:", "x:end", "812:later"])
def test_bad_checkpoint_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidInput):
        parse_checkpoint(token)


def test_table_aligns_under_a_header() -> None:
    shown = table(("name", "rows", "note"), [("a", 5, "x"), ("long-name", 12345, None)], {1})
    assert shown.splitlines() == [
        "name        rows  note",
        "a              5  x",
        "long-name  12345",
    ]
