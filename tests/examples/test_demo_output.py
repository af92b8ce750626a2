"""What the shop demo says about itself: where its database lives (never its password)."""

from __future__ import annotations

from examples.shop.demo import where


def test_the_demo_says_where_its_database_lives() -> None:
    url = "postgresql+psycopg://shop:s3cret@db.internal:5432/shop"
    assert where(url, {"CQRS_DATABASE_URL": url}) == (
        "postgresql+psycopg://shop:***@db.internal:5432/shop"
    )
    embedded = where("postgresql+psycopg://postgres@/postgres?host=/tmp", {"CQRS_PGDATA": "/d"})
    assert embedded.startswith("the embedded PostgreSQL 16, data in /d ")
    assert "s3cret" not in embedded
