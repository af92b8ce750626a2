"""Payload values stay out of logs and stored error texts (issue 12, item 1).

A read-model write that PostgreSQL refuses raises through SQLAlchemy with the
statement's parameters attached (``[parameters: ...]``) and a message that quotes
the refused value. None of that may reach the runner's warning log,
``dead_letters.error``, ``checkpoints.last_error`` or the command bus's log,
unless ``cqrs.errortext.reveal_values()`` asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cqrs import CommandBus, Event, EventRegistry, EventStore, UnitOfWork, errortext
from cqrs import event as declare
from cqrs.projections import E, FailurePolicy, Projection
from cqrs.projections.runner import ProjectionRunner

CARD = "4111-1111-1111-1111"
REG = EventRegistry()
store = EventStore(registry=REG)


@declare("values.paid", registry=REG)
class Paid(Event):
    order_id: str
    card: str


class Base(DeclarativeBase):
    pass


class Payment(Base):
    __tablename__ = "values_payments"

    order_id: Mapped[str] = mapped_column(String, primary_key=True)
    card_digits: Mapped[int] = mapped_column(Integer)  # the card text will not fit


def _projection() -> Projection:
    payments = Projection(
        "values_payments", Payment, registry=REG, policy=FailurePolicy(retries=1, backoff=0.0)
    )
    payments.on(Paid).upsert(order_id=E.order_id, card_digits=E.card)
    return payments


@pytest.fixture
def engine(cqrs_engine: Engine) -> Iterator[Engine]:
    Base.metadata.create_all(cqrs_engine)
    yield cqrs_engine
    errortext.reveal_values(False)


def _stored_errors(engine: Engine) -> str:
    with engine.connect() as conn:
        parked = conn.execute(text("SELECT string_agg(error, ' ') FROM dead_letters")).scalar()
        last = conn.execute(text("SELECT string_agg(last_error, ' ') FROM checkpoints")).scalar()
    return f"{parked or ''} {last or ''}"


def _run_once(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        store.append(session, "order-1", [Paid("order-1", CARD)])
    ProjectionRunner(engine, [_projection()], store=store, listen=False).run_until_caught_up()


def test_the_runner_keeps_payload_values_out_of_its_log_and_stored_errors(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cqrs.projections"):
        _run_once(engine)
    stored = _stored_errors(engine)
    assert "22P02" in stored and "values hidden" in stored  # what failed, and where to look
    assert "values_payments" in stored  # the statement's first line names the table
    assert CARD not in stored
    assert caplog.records, "the failure was logged"
    assert CARD not in caplog.text and "parameters" not in caplog.text


def test_reveal_values_shows_them_for_debugging(engine: Engine) -> None:
    errortext.reveal_values()
    _run_once(engine)
    assert CARD in _stored_errors(engine)


def test_the_command_bus_logs_a_database_error_without_its_values(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    bus = CommandBus(store=store)

    class Charge:
        pass

    @bus.handles(Charge)
    def charge(cmd: Charge, uow: UnitOfWork) -> None:
        uow.session.execute(text("SELECT CAST(:card AS int)"), {"card": CARD})

    with (
        caplog.at_level(logging.WARNING, logger="cqrs.commands"),
        Session(engine) as session,
        pytest.raises(Exception, match="invalid input syntax"),
    ):
        bus.dispatch(Charge(), session)
    assert "failed" in caplog.text and "22P02" in caplog.text
    assert CARD not in caplog.text


def test_mask_values_masks_quoted_values_and_key_details() -> None:
    assert errortext.mask_values(f'invalid input syntax for type integer: "{CARD}"') == (
        'invalid input syntax for type integer: "…"'
    )
    assert errortext.mask_values(f"Key (card)=({CARD}) already exists.") == (
        "Key (card)=(…) already exists."
    )
