"""SLO evaluation on the embedded engine: every figure worked out by hand from known rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

import correlator.schema  # noqa: F401 - registers the transactions table's migrations
from alerts import slo_report, slo_series
from stitchboard.store import Store
from tests.alerts_helpers import (
    DAY,
    HOUR,
    MINUTE,
    NS,
    config,
    insert_transactions,
    migrate_alerts,
    tx,
    when,
)

NOW = int(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC).timestamp()) * NS
CONFIG = config()


@pytest.fixture(scope="module")
def loaded(store: Store) -> Store:
    migrate_alerts(store)
    store.command(f"TRUNCATE TABLE {store.table('transactions')}")
    steps_b = ["a", "b"]
    insert_transactions(
        store,
        [
            # F1, end to end (breach level): 3 good, 1 late, 1 overdue, 1 failed.
            tx(
                "t1",
                "F1",
                "complete",
                now=NOW,
                end=NOW - 2 * HOUR,
                steps=(steps_b, [1, NOW - 2 * HOUR - 10 * MINUTE], ["", ""]),
            ),
            tx(
                "t2",
                "F1",
                "complete",
                now=NOW,
                end=NOW - 10 * MINUTE,
                steps=(steps_b, [1, NOW - 15 * MINUTE], ["", "warn"]),
            ),
            tx("t3", "F1", "late", level="warn", now=NOW, end=NOW - 3 * HOUR),
            tx("t4", "F1", "late", level="breach", now=NOW, end=NOW - 20 * MINUTE, amount="100.00"),
            tx(
                "t5",
                "F1",
                "in_progress",
                now=NOW,
                last=NOW - 5 * HOUR,
                breach=NOW - 30 * MINUTE,
                amount="250.50",
                steps=(steps_b, [1, 0], ["", "breach"]),
            ),
            tx(
                "t6",
                "F1",
                "in_progress",
                now=NOW,
                last=NOW - HOUR,
                breach=NOW + HOUR,
                steps=(steps_b, [1, 0], ["", ""]),
            ),
            tx("t7", "F1", "failed", now=NOW, last=NOW - 4 * HOUR),
            tx("t8", "F1", "complete", now=NOW, end=NOW - 2 * DAY),
            tx("t9", "F1", "complete", now=NOW, end=NOW - HOUR, deleted=1),
            # F2: one good transaction.
            tx("t10", "F2", "complete", now=NOW, end=NOW - HOUR),
        ],
    )
    return store


def _by(statuses, slo, facility):
    return next(s for s in statuses if s.slo == slo and s.group["facility"] == facility)


def test_end_to_end_counts_compliance_budget_and_burn_rates(loaded: Store) -> None:
    report = slo_report(loaded, CONFIG, now=when(NOW))
    f1 = _by(report, "w_e2e", "F1")
    assert (f1.good, f1.late, f1.overdue, f1.failed, f1.bad, f1.total) == (3, 1, 1, 1, 3, 6)
    assert f1.status == "breach"
    assert f1.compliance == pytest.approx(0.5)
    # 1 - (1 - 0.5) / (1 - 0.9) = -4: the budget is spent four times over.
    assert f1.budget_remaining == pytest.approx(-4.0)
    assert f1.amount_at_risk == Decimal("350.50")
    assert f1.window == "1d"
    # The workbook windows scaled from 30 days to 1 day (x 1/30).
    assert list(f1.burn_rates) == ["10s", "1m", "2m", "4m", "12m", "48m", "2h24m"]
    # Judged in the last 48 minutes: t2 good (10m ago), t4 late (20m), t5 overdue (30m).
    assert f1.burn_rates["48m"] == pytest.approx((2 / 3) / 0.1)
    assert f1.burn_rates["12m"] == pytest.approx(0.0)  # only t2
    assert f1.burn_rates["4m"] is None  # nothing judged: no rate, not zero
    # 144 minutes: t1 (2h ago), t2, t4, t5 -> half bad.
    assert f1.burn_rates["2h24m"] == pytest.approx(5.0)


def test_quiet_facility_is_no_data_not_compliant(loaded: Store) -> None:
    report = slo_report(loaded, CONFIG, now=when(NOW))
    f2 = _by(report, "w_e2e", "F2")
    assert (f2.status, f2.compliance, f2.budget_remaining, f2.total) == ("ok", 1.0, 1.0, 1)
    f3 = _by(report, "w_e2e", "F3")
    assert (f3.status, f3.compliance, f3.budget_remaining, f3.total) == ("no_data", None, None, 0)
    assert f3.reasons == ("no transactions judged in the 1d window",)
    assert all(rate is None for rate in f3.burn_rates.values())


def test_step_indicator_at_warn_level(loaded: Store) -> None:
    report = slo_report(loaded, CONFIG, now=when(NOW))
    rows = [s for s in report if s.slo == "w_b_warn"]
    assert [s.group["facility"] for s in rows] == ["F1"]  # the SLO names only F1
    [f1] = rows
    # t1: b on time (good); t2: b missed warn (late); t5: b pending past breach (overdue);
    # t6: b not due yet (not counted); rows without step b are not counted.
    assert (f1.good, f1.late, f1.overdue, f1.failed) == (1, 1, 1, 0)
    assert f1.compliance == pytest.approx(1 / 3)
    assert f1.amount_at_risk == Decimal("250.50")


def test_window_override_and_series(loaded: Store) -> None:
    [f1] = [
        s
        for s in slo_report(loaded, CONFIG, now=when(NOW), window="1h")
        if s.slo == "w_e2e" and s.group["facility"] == "F1"
    ]
    # Last hour: t2 good, t4 late, t5 overdue.
    assert (f1.good, f1.bad, f1.window) == (1, 2, "1h")
    series = slo_series(
        loaded,
        CONFIG,
        "w_e2e",
        {"facility": "F1"},
        when(NOW - 6 * HOUR),
        when(NOW),
        dt.timedelta(hours=1),
    )
    assert [t.hour for t, _ in series] == [6, 7, 8, 9, 10, 11]
    # 08:00 t7 failed; 09:00 t3 (late at warn only: good); 10:00 t1 good;
    # 11:00 t2 good, t4 late, t5 overdue; nothing before 08:00.
    assert [v for _, v in series] == [None, None, 0.0, 1.0, 1.0, pytest.approx(1 / 3)]


def test_timeslice_budgeting_and_calendar_month(loaded: Store) -> None:
    cfg = config("""
slos:
  - name: sliced
    indicator: {workflow: w}
    objective: 0.9
    window: 1d
    budgeting: timeslices
    timeslice: 1h
    facilities: [F1]
  - name: monthly
    indicator: {workflow: w}
    objective: 0.9
    calendar: month
    facilities: [F1]
""")
    sliced, monthly = slo_report(loaded, cfg, now=when(NOW))
    # Hourly slices of F1: 08:00 t7 failed (0/1), 09:00 t3 (1/1), 10:00 t1 (1/1),
    # 11:00 t2, t4, t5 (1/3 < 0.9): 2 good slices of 4.
    assert sliced.compliance == pytest.approx(0.5)
    assert sliced.budget_remaining == pytest.approx(-4.0)
    assert (sliced.good, sliced.bad) == (3, 3)  # the counts stay per transaction
    assert "2 of 4 1h slices met the target" in sliced.reasons
    # March in Chicago starts 2026-03-01T06:00Z: t8 (two days ago) counts too.
    assert monthly.window == "calendar month"
    assert (monthly.good, monthly.late, monthly.overdue, monthly.failed) == (4, 1, 1, 1)
    assert monthly.compliance == pytest.approx(4 / 7)
