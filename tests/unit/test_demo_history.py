"""The demo's short history reaches back to a pay-period close: every workflow has data."""

from __future__ import annotations

from simulator.supply import history_with_a_pay_period_close
from tests.correlator_helpers import at


def test_the_demo_history_reaches_back_to_a_pay_period_close() -> None:
    day = 86_400 * 1_000_000_000
    # Periods end on Saturdays two weeks apart from 2026-01-03: one closed on Sunday
    # 2026-03-01 (00:05 local). On Friday 2026-03-13 five days would miss it.
    now = at("2026-03-13T12:00:00+00:00")
    assert history_with_a_pay_period_close(5 * day, now) == 14 * day
    # On Monday 2026-03-16 (a close the day before) five days are enough.
    assert history_with_a_pay_period_close(5 * day, at("2026-03-16T12:00:00+00:00")) == 5 * day
