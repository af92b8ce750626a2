"""Internal: the shop example's fixtures: its package on the path, engines with its tables."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.shop.models import Base  # noqa: E402


@pytest.fixture
def shop_engine(cqrs_engine: Engine) -> Iterator[Engine]:
    """``cqrs_engine`` (a fresh schema with the toolkit's tables) plus the shop's read models."""
    with cqrs_engine.begin() as conn:
        Base.metadata.create_all(conn)
    yield cqrs_engine
