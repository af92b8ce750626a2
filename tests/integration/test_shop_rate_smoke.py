"""The shop-rate benchmark runs end to end at a tiny rate, and its checks can fail.

No timing is asserted: this proves the writers, the 12 consumers, the lag
sampler and the end-state verification work on real PostgreSQL.
"""

from __future__ import annotations

import io

from sqlalchemy import create_engine, text

from benchmarks import shop_rate
from cqrs.testing import schema_engine


def test_a_short_run_verifies_its_end_state_and_a_wrong_read_model_fails(
    cqrs_database_url: str,
) -> None:
    out = io.StringIO()
    result = shop_rate.run(
        cqrs_database_url, rate=8, seconds=2, schema="shop_rate_smoke", sample=0.2,
        out=out,
    )  # fmt: skip
    try:
        assert result.ok, out.getvalue()
        assert len(result.checks) >= 10
        assert result.placed > 0 and result.orders == 16
        assert set(result.lags.events) == {
            "order_summary", "customer_profiles", "customer_history", "inventory_levels",
            "daily_sales", "shipment_tracking", "payments_ledger", "notifications",
            "stock_process", "payment_process", "fulfilment_process", "compensation_process",
        }  # fmt: skip
        assert "verified" in out.getvalue()
        # the checks look at the data: a read model that disagrees with the log fails them
        engine = schema_engine(cqrs_database_url, "shop_rate_smoke")
        try:
            with engine.begin() as conn:
                conn.execute(text(
                    "UPDATE order_summary SET status = 'placed' WHERE order_id = "
                    "(SELECT min(order_id) FROM order_summary)"
                ))  # fmt: skip
            failed = {c.name for c in shop_rate.verify(engine, result.placed) if not c.ok}
        finally:
            engine.dispose()
        assert failed == {"every order in a final state", "order_summary status = the log's"}
    finally:
        admin = create_engine(cqrs_database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text('DROP SCHEMA IF EXISTS "shop_rate_smoke" CASCADE'))
        admin.dispose()
