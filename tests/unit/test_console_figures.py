"""Figures and the overview's SLO logic, from plain values (no Dash app, no store)."""

from __future__ import annotations

from decimal import Decimal

from alerts import SloStatus
from dashboards import figures
from dashboards.figures import HeatCell
from dashboards.pages.overview import heat_cells, worst_budget
from dashboards.queries import AgingBucket, FunnelStep, Latency


def status(
    slo: str,
    workflow: str,
    step: str | None,
    facility: str,
    compliance: float | None,
    budget: float | None,
    total: int = 10,
) -> SloStatus:
    return SloStatus(
        slo=slo,
        workflow=workflow,
        step=step,
        group={"facility": facility},
        objective=0.95,
        window="7d",
        status="ok",
        compliance=compliance,
        good=0,
        bad=0,
        late=0,
        overdue=0,
        failed=0,
        total=total,
        budget_remaining=budget,
        burn_rates={},
        amount_at_risk=Decimal("0"),
    )


def test_heat_cells_prefer_the_end_to_end_slo() -> None:
    statuses = [
        status("ack", "d2r", "engine_ack", "NMC01", 0.99, 0.8),
        status("e2e", "d2r", None, "NMC01", 0.90, -1.0),
        status("e2e", "d2r", None, "LCH02", None, None, total=0),
        status("po", "r2p", "po_sent", "NMC01", 0.97, 0.4),
    ]
    cells = heat_cells(statuses)
    assert [c.step for c in cells] == [None, None, "po_sent"]
    assert [(c.slo, c.facility, c.compliance) for c in cells] == [
        ("e2e", "NMC01", 0.90),
        ("e2e", "LCH02", None),
        ("po", "NMC01", 0.97),
    ]
    worst = worst_budget(statuses)
    assert worst is not None and (worst.slo, worst.facility, worst.remaining) == (
        "e2e",
        "NMC01",
        -1.0,
    )
    assert worst_budget([status("x", "w", None, "F", None, None)]) is None


def test_heatmap_colours_against_the_objective_and_writes_the_number() -> None:
    cells = [
        HeatCell("NMC01", "d2r", "e2e", 0.995, 0.99, 200),
        HeatCell("LCH02", "d2r", "e2e", 0.5, 0.99, 40),
    ]
    fig = figures.compliance_heatmap(
        [("NMC01", "Northside"), ("LCH02", "Lakeside")], ["d2r", "c2c"], cells
    )
    heat = fig.data[0]
    assert heat.z[0][0] == 0.995 - 0.99  # above objective: the blue side
    assert heat.z[1][0] == -0.1  # far below: clipped to the warm end
    assert heat.z[0][1] is None and heat.text[0][1] == "no data"
    assert heat.text[0][0] == "99.5%<br>200 judged"
    assert list(heat.y) == ["Northside", "Lakeside"]
    assert list(heat.x) == ["d2r", "c2c"]
    step_slo = figures.compliance_heatmap(
        [("NMC01", "Northside")], ["r2p"], [HeatCell("NMC01", "r2p", "po", 0.9, 0.9, 5, "po_sent")]
    )
    assert list(step_slo.data[0].x) == ["r2p<br>(po sent step)"]


def test_funnel_latency_aging_figures() -> None:
    funnel = figures.funnel([FunnelStep("discharge", 5, 0), FunnelStep("engine_ack", 5, 1)])
    assert list(funnel.data[0].x) == [5, 5] and list(funnel.data[1].x) == [0, 1]
    assert list(funnel.data[1].text) == ["", "1"]  # nothing written where nothing stopped
    assert "No transactions" in figures.funnel([]).layout.annotations[0].text
    latency = figures.latency(
        Latency("engine_ack", 5, 60.0, 300.0, 300.0, ((60.0, 4), (300.0, 1)), 10.0), 120.0, 900.0
    )
    assert list(latency.data[0].width) == [10 / 60, 10 / 60]  # 10 s bins, in minutes
    lines = [s.x0 for s in latency.layout.shapes]
    assert lines == [1.0, 5.0, 5.0, 2.0, 15.0]  # minutes: p50, p90, p99, warn, breach
    assert (
        "No engine ack step"
        in figures.latency(Latency("engine_ack", 0, None, None, None), None, None)
        .layout.annotations[0]
        .text
    )
    aging = figures.aging(
        [AgingBucket("< 1 d", 3, Decimal("1500")), AgingBucket("> 30 d", 0, Decimal("0"))]
    )
    assert list(aging.data[0].text) == ["3 · $1.5K", ""]


def test_timeline_marks_late_and_failed_hops_and_draws_deadlines() -> None:
    hops = [
        {
            "system": "EHR_ADT",
            "status": "ok",
            "step": "discharge",
            "local": "2026-03-09 09:00",
            "operation": "ADT^A03",
        },
        {
            "system": "PATACCT",
            "status": "ok",
            "step": "final_bill",
            "local": "2026-03-15 11:00",
            "operation": "claim.final_bill",
        },
        {
            "system": "PERIOP",
            "status": "error",
            "step": "charge",
            "local": "2026-03-09 11:00",
            "operation": "DFT^P03",
        },
    ]
    steps = [
        {
            "name": "final_bill",
            "missed": "warn",
            "warn_local": "2026-03-14 09:00",
            "breach_local": "2026-03-16 09:00",
        }
    ]
    fig = figures.timeline(hops, steps, "America/Chicago")
    kinds = {trace.name: list(trace.y) for trace in fig.data}
    assert kinds == {"on time": ["EHR_ADT"], "late step": ["PATACCT"], "failed": ["PERIOP"]}
    assert [s.x0 for s in fig.layout.shapes] == ["2026-03-14 09:00", "2026-03-16 09:00"]
    # Two days apart on a 6-day axis: both labels on the first row, level, not slanted.
    assert [(a.text, a.yshift, a.textangle) for a in fig.layout.annotations] == [
        ("final bill warn", 2, None),
        ("final bill breach", 2, None),
    ]
    # The engine's ACK: warn 2 min and breach 15 min after the discharge, 13 minutes
    # apart; the breach label goes on the row above the warn label.
    ack = {
        "name": "engine_ack",
        "warn_local": "2026-03-09 09:02",
        "breach_local": "2026-03-09 09:15",
    }
    fig = figures.timeline(hops, [ack, *steps], "America/Chicago")
    shifts = {a.text: a.yshift for a in fig.layout.annotations}
    assert shifts == {
        "engine ack warn": 2,
        "engine ack breach": 16,
        "final bill warn": 2,
        "final bill breach": 2,
    }
    assert fig.layout.margin.t == 30 + 2 * 14  # room for two rows


def test_labels_that_would_meet_go_on_separate_rows() -> None:
    # 9 days over the 900 px plot: 14.4 min a pixel; an 8-letter label and its gap
    # (10 characters of 6.2 px) run 892.8 min, 14 h 52.8 min right of its time.
    span = ("2026-03-09 00:00", "2026-03-18 00:00")
    label = "x" * 8
    marks = [
        ("2026-03-09 00:00", label),  # row 0, taken until 14:52.8
        ("2026-03-09 00:15", label),  # row 1, taken until 15:07.8
        ("2026-03-09 15:00", label),  # row 0 is free again
        ("2026-03-09 15:00", label),  # rows 0 and 1 taken: row 2
        ("2026-03-12 00:00", label),  # far right: row 0
    ]
    assert figures.label_rows(marks, span) == [0, 1, 0, 2, 0]
    assert figures.label_rows([], span) == []


def test_hop_labels_of_one_lane_that_would_meet_go_above_and_below() -> None:
    hop = {"system": "EHR_ADT", "status": "ok", "operation": "ADT^A03"}
    hops = [
        {**hop, "step": "discharge", "local": "2026-03-09 09:00"},
        {**hop, "step": "unexpected", "local": "2026-03-09 09:30"},
        {**hop, "step": "final_bill", "local": "2026-03-15 09:00"},
    ]
    fig = figures.timeline(hops, [], "America/Chicago")
    [trace] = fig.data
    assert list(trace.textposition) == ["top center", "bottom center", "top center"]


def test_a_clicked_cell_opens_its_workflow_and_facility() -> None:
    from dashboards.pages.overview import drill_target
    from stitchboard.config import load_config
    from tests.support import ROOT

    config = load_config(ROOT / "slas.yaml")
    point = {"x": "requisition to payment<br>(po sent step)", "y": "Lakeside Community Hospital"}
    assert drill_target(config, point, {"range": "30d"}) == (
        "/workflow?workflow=requisition_to_payment&facility=LCH02&range=30d"
    )
    assert drill_target(config, {"x": "discharge to revenue", "y": "?"}, {"range": "7d"}) == (
        "/workflow?workflow=discharge_to_revenue"
    )
    assert drill_target(config, {"x": "no such workflow"}, {}) is None
    custom = {"range": "custom", "from": "2026-03-09", "to": "2026-03-15"}
    assert drill_target(config, point, custom) == (
        "/workflow?workflow=requisition_to_payment&facility=LCH02&from=2026-03-09&to=2026-03-15"
    )


def test_shared_figures_are_computed_once_per_ttl() -> None:
    from dashboards.cache import TtlCache

    t = [0.0]
    cache = TtlCache(ttl=30, clock=lambda: t[0], size=2)
    calls: list[str] = []

    def compute(name: str):
        return lambda: calls.append(name) or len(calls)

    assert cache.get("7d", compute("7d")) == 1
    t[0] = 29.9
    assert cache.get("7d", compute("7d")) == 1  # still fresh
    t[0] = 30.0
    assert cache.get("7d", compute("7d")) == 2  # recomputed after ttl
    cache.get("30d", compute("30d"))
    cache.get("90d", compute("90d"))  # the oldest entry makes room
    assert calls == ["7d", "7d", "30d", "90d"] and len(cache._items) == 2
