"""The overview's SLO figures from the alerts stage's SLI rollup, over known traffic.

tests/dashboard_seed.py: T0 = Mon 2026-03-09 14:00 UTC, NOW = T0 + 10 d. The end-to-end
SLO of discharge_to_revenue (breach level) judges its five transactions at:

- VISIT0002 NMC01 overdue at Wed 11 Mar 05:00 UTC: its journal was due by the end of the
  business day after its charge (Mon 12:00 CDT -> Tue 24:00 CDT);
- VISIT0004 NMC01 overdue at Thu 12 Mar 17:00 UTC: no charge 72 h after its discharge;
- VISIT0001 NMC01 good at Fri 13 Mar 14:00 UTC (final bill at T0 + 4 d);
- VISIT0005 MSC03 failed at Fri 13 Mar 18:00 UTC (its last hop; a charge reported an error);
- VISIT0003 LCH02 good at Sun 15 Mar 16:00 UTC (final bill at +6 d: past warn, within breach).
"""

from __future__ import annotations

import datetime as dt

import pytest

from alerts import refresh_rollup, rollup_refreshed_at, slo_report
from correlator import CorrelatorService
from dashboards import figures, time_range
from dashboards.objectives import headline_slos, slo_figures, slo_window, trend_series
from dashboards.pages.overview import OnTime, on_time, worst_budget
from stitchboard.events import EVENT_COLUMNS
from tests.correlator_helpers import DAY, HOUR, NS, at, shipped_config
from tests.dashboard_seed import NOW, T0, chain, seed_events

CONFIG = shipped_config()
D2R = "discharge_to_revenue"


@pytest.fixture(scope="module")
def seeded(store):
    store.insert("events", EVENT_COLUMNS, [e.row() for e in seed_events()])
    CorrelatorService(store, CONFIG).full_pass()
    return store


def day(text: str) -> int:
    return at(f"{text}T00:00:00+00:00") // NS


def test_the_headline_slo_of_each_workflow() -> None:
    chosen = {wf: slo.name for wf, slo in headline_slos(CONFIG.slos).items()}
    assert chosen == {
        D2R: "discharge_to_revenue_end_to_end",  # end to end beats its two step SLOs
        "claim_to_cash": "claim_acknowledged",
        "implant_use_to_replenishment": "implant_charge_captured",
        "requisition_to_payment": "requisition_po_sent",
        "timecard_to_labor_gl": "timecard_to_labor_gl_end_to_end",
    }


def test_before_the_first_refresh_the_figures_are_counted_from_transactions(seeded) -> None:
    assert rollup_refreshed_at(seeded) is None
    found = slo_figures(seeded, CONFIG, "30d", NOW)
    assert found.as_of is None
    e2e = {
        s.group["facility"]: (s.good, s.total)
        for s in found.statuses
        if s.slo == "discharge_to_revenue_end_to_end"
    }
    assert e2e == {"LCH02": (1, 1), "MSC03": (0, 1), "NMC01": (1, 3)}


def test_figures_come_from_the_rollup_as_of_its_last_refresh(seeded) -> None:
    before = dt.datetime.now(dt.UTC).timestamp() * NS
    refresh_rollup(seeded, list(CONFIG.slos))
    found = slo_figures(seeded, CONFIG, "30d", NOW)
    assert found.as_of is not None and found.as_of >= before
    assert found.as_of == rollup_refreshed_at(seeded)
    moment = dt.datetime.fromtimestamp(NOW / NS, dt.UTC)
    assert found.statuses == slo_report(seeded, CONFIG, now=moment, window="30d")
    e2e = {
        s.group["facility"]: (s.good, s.total, s.compliance)
        for s in found.statuses
        if s.slo == "discharge_to_revenue_end_to_end"
    }
    assert e2e == {
        "LCH02": (1, 1, 1.0),
        "MSC03": (0, 1, 0.0),
        "NMC01": (1, 3, pytest.approx(1 / 3)),
    }
    # The least budget left: charges posted within 72 h (objective 97 %) at MSC03, where
    # the one charge judged failed: 1 - (1 - 0) / (1 - 0.97) = -32.33.
    budget = worst_budget(found.statuses)
    assert budget is not None
    assert (budget.slo, budget.facility) == ("discharge_charges_posted", "MSC03")
    assert budget.remaining == pytest.approx(1 - 1 / 0.03)


def test_trend_per_day_of_the_verdict_with_gaps_where_nothing_was_judged(seeded) -> None:
    refresh_rollup(seeded, list(CONFIG.slos))
    series = {s.workflow: s for s in trend_series(seeded, CONFIG, T0, NOW, NOW, 86_400, None)}
    d2r = series[D2R]
    assert (d2r.slo, d2r.step, d2r.objective) == ("discharge_to_revenue_end_to_end", None, 0.95)
    points = {p.bucket_s: (p.good, p.judged) for p in d2r.points}
    # One point per UTC day from Mon 9 Mar (T0's day) through Thu 19 Mar (NOW's day).
    assert min(points) == day("2026-03-09") and max(points) == day("2026-03-19")
    assert len(points) == 11
    judged = {b: v for b, v in points.items() if v[1]}
    assert judged == {
        day("2026-03-11"): (0, 1),  # VISIT0002 overdue
        day("2026-03-12"): (0, 1),  # VISIT0004 overdue
        day("2026-03-13"): (1, 2),  # VISIT0001 good, VISIT0005 failed
        day("2026-03-15"): (1, 1),  # VISIT0003 good
    }
    rates = {p.bucket_s: p.compliance for p in d2r.points}
    assert rates[day("2026-03-13")] == 0.5 and rates[day("2026-03-14")] is None
    # The claims the final bills started wait for their 837: their 999 SLO has judged
    # nothing yet, so the line is all gaps (no data), never 0 %.
    assert all(p.judged == 0 for p in series["claim_to_cash"].points)
    fig = figures.trend(list(series.values()))
    line = next(t for t in fig.data if t.name == "discharge to revenue")
    assert [y for y in line.y if y is not None] == [0.0, 0.0, 50.0, 100.0]
    assert sum(y is None for y in line.y) == 7
    assert "judged" in fig.layout.title.text


def test_trend_of_one_facility_and_an_overdue_counted_only_once_due(seeded) -> None:
    refresh_rollup(seeded, list(CONFIG.slos))
    nmc = trend_series(seeded, CONFIG, T0, NOW, NOW, 86_400, "NMC01")[0]
    assert [(p.good, p.judged) for p in nmc.points if p.judged] == [(0, 1), (0, 1), (1, 1)]
    # Seen from Thu 12 Mar 12:00 UTC, VISIT0004's deadline (17:00 that day) has not
    # passed: it is not judged yet, and VISIT0001 has not completed.
    noon = at("2026-03-12T12:00:00+00:00")
    early = trend_series(seeded, CONFIG, T0, noon, noon, 86_400, "NMC01")[0]
    assert [(p.good, p.judged) for p in early.points if p.judged] == [(0, 1)]


def test_trend_totals_equal_the_slo_report(seeded) -> None:
    """The rollup's kinds as the trend reads them agree with the alerts stage's counts."""
    refresh_rollup(seeded, list(CONFIG.slos))
    moment = dt.datetime.fromtimestamp(NOW / NS, dt.UTC)
    report = slo_report(seeded, CONFIG, now=moment, window="30d")
    for line in trend_series(seeded, CONFIG, NOW - 30 * DAY, NOW, NOW, 3600, None):
        statuses = [s for s in report if s.slo == line.slo]
        good = sum(s.good for s in statuses)
        total = sum(s.total for s in statuses)
        assert (sum(p.good for p in line.points), sum(p.judged for p in line.points)) == (
            good,
            total,
        ), line.slo


def test_custom_dates_count_what_was_judged_between_them(seeded) -> None:
    refresh_rollup(seeded, list(CONFIG.slos))
    friday = time_range.from_args({"from": "2026-03-13", "to": "2026-03-13"})
    window, end = slo_window(friday, NOW)
    assert (window, end) == ("86400s", at("2026-03-14T00:00:00+00:00"))
    assert slo_window(time_range.from_args({"range": "30d"}), NOW) == ("30d", NOW)
    found = slo_figures(seeded, CONFIG, window, end)
    e2e = {
        s.group["facility"]: (s.good, s.total, s.status)
        for s in found.statuses
        if s.slo == "discharge_to_revenue_end_to_end"
    }
    # Friday 13 March (UTC): VISIT0001 good at NMC01, VISIT0005 failed at MSC03; nothing
    # judged at LCH02 (VISIT0003 was judged on Sunday): no data, not 0 %.
    assert e2e == {"LCH02": (0, 0, "no_data"), "MSC03": (0, 1, "breach"), "NMC01": (1, 1, "ok")}


def test_the_on_time_card_pools_the_heatmaps_verdicts(seeded) -> None:
    # The headline SLO of discharge_to_revenue (end to end, breach level) judged five:
    # good VISIT0001 and VISIT0003 (final bill at +6 d: past its 5 d warn, within the
    # 7 d breach deadline), overdue VISIT0002 and VISIT0004, failed VISIT0005: 2 of 5.
    # Counted as "complete within every deadline" VISIT0003 would be late: 1 of 5.
    statuses = slo_figures(seeded, CONFIG, "30d", NOW).statuses
    assert on_time(statuses) == OnTime(good=2, judged=5)
    assert on_time(statuses).share == pytest.approx(0.4)
    # One facility: the heatmap's cell (NMC01: VISIT0001 good of 0001, 0002, 0004).
    assert on_time(statuses, "NMC01") == OnTime(good=1, judged=3)
    assert on_time(statuses, "LCH02").share == 1.0
    # Nothing judged: no figure, never 0 % or 100 %.
    assert on_time(statuses, "NOPE").share is None


def test_a_change_shows_after_the_next_refresh(seeded) -> None:
    refresh_rollup(seeded, list(CONFIG.slos))
    # VISIT0007 at LCH02, a day after T0: complete on time (final bill at +4 d).
    seeded.insert("events", EVENT_COLUMNS, [e.row() for e in chain(T0 + DAY + HOUR, 7, "LCH02")])
    CorrelatorService(seeded, CONFIG).full_pass()

    def lch02() -> tuple[int, int]:
        found = slo_figures(seeded, CONFIG, "30d", NOW)
        [s] = [
            s
            for s in found.statuses
            if s.slo == "discharge_to_revenue_end_to_end" and s.group["facility"] == "LCH02"
        ]
        return s.good, s.total

    assert lch02() == (1, 1)  # as of the last refresh
    refresh_rollup(seeded, list(CONFIG.slos))
    assert lch02() == (2, 2)
