"""What a resolve says (pure): cleared, with the figures of the resolving cycle, worked
by hand for each rule; the rule's own annotations (a runbook) kept, the examples dropped."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from alerts.conditions import FeedRow, OverdueRow
from alerts.lifecycle import AlertRecord
from alerts.objectives import SloStatus
from alerts.resolution import Findings, cleared
from correlator import UnmatchedGroup
from tests.alerts_helpers import MINUTE, NS, config

# 2026-03-10 15:00 UTC = 10:00 in Chicago (F1, daylight time), a Tuesday.
NOW = int(dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC).timestamp()) * NS
CONFIG = config(
    """\
alerts:
  overdue: {amount: 10000, count: 3}
  idle_feeds:
    idle_after: 30m
    business_hours: {start: 7, end: 19}
    feeds: [{system: SYS_S, facility: F1, idle_after: 2h}]
  error_spike: {threshold: 5, window: 10m}
"""
)


def fired(rule: str, labels: dict[str, str]) -> AlertRecord:
    return AlertRecord(
        fingerprint="f",
        rule=rule,
        severity="page",
        state="firing",
        labels={"rule": rule, **labels},
        annotations={
            "summary": "what the page said",
            "description": "its figures",
            "examples": "t1 t2",
            "example_links": "http://c/api/v1/transactions/t1",
            "runbook_url": "https://runbooks.example/x",
        },
        active_since=NOW - 10 * MINUTE,
        starts_at=NOW - 10 * MINUTE,
        ends_at=None,
        value=1.0,
    )


def test_overdue_cleared_with_the_count_and_amount_now() -> None:
    row = OverdueRow("w", "F1", 2, 0, Decimal("1234.50"), ("a", "b"))
    record = fired("overdue", {"workflow": "w", "facility": "F1"})
    assert cleared(record, Findings(overdue=(row,)), CONFIG, NOW) == {
        "runbook_url": "https://runbooks.example/x",
        "summary": "w at F1 cleared: 2 transactions overdue, $1,234.50 at risk",
        "description": "0 worth at least $10,000; 2 overdue (limit 3)",
        "overdue": "2",
        "amount_at_risk": "1234.50",
    }
    # None overdue any more: no row at all.
    nothing = cleared(record, Findings(), CONFIG, NOW)
    assert nothing["summary"] == "w at F1 cleared: 0 transactions overdue, $0.00 at risk"
    assert (nothing["overdue"], nothing["amount_at_risk"]) == ("0", "0.00")


def test_idle_feed_cleared_by_a_receipt_or_by_the_end_of_business_hours() -> None:
    record = fired("idle_feed", {"system": "SYS_A", "facility": "F1"})
    back = FeedRow("SYS_A", "F1", "", NOW - 90 * NS)
    assert cleared(record, Findings(feeds=(back,)), CONFIG, NOW) == {
        "runbook_url": "https://runbooks.example/x",
        "summary": "SYS_A at F1 cleared: received again, the newest 1m ago",
        "description": "Limit 30m without receipts.",
    }
    # 19:00 in Chicago (00:00 UTC next day): still silent, no longer judged.
    evening = NOW + 9 * 60 * MINUTE
    silent = FeedRow("SYS_A", "F1", "", evening - 45 * MINUTE)
    after_hours = cleared(record, Findings(feeds=(silent,)), CONFIG, evening)
    assert after_hours["summary"] == (
        "SYS_A at F1 cleared: outside business hours (7:00-19:00 local, business days)"
    )
    assert after_hours["description"] == "Still nothing received for 45m (limit 30m)."
    # A declared feed's own limit: 40 minutes of silence is within its 2h.
    declared = fired("idle_feed", {"system": "SYS_S", "facility": "F1"})
    quiet = FeedRow("SYS_S", "F1", "", NOW - 40 * MINUTE)
    assert cleared(declared, Findings(feeds=(quiet,)), CONFIG, NOW)["summary"] == (
        "SYS_S at F1 cleared: received again, the newest 40m ago"
    )
    assert cleared(record, Findings(), CONFIG, NOW)["summary"] == (
        "SYS_A at F1 cleared: no longer watched"
    )


def test_error_spike_and_unmatched_cleared_with_their_counts_now() -> None:
    spike = fired("error_spike", {"system": "SYS_A", "facility": "F1"})
    found = Findings(errors=(("SYS_A", "F1", 2), ("SYS_B", "F1", 9)))
    assert cleared(spike, found, CONFIG, NOW)["summary"] == (
        "SYS_A at F1 cleared: 2 failed hops in 10m"
    )
    waiting = fired("unmatched", {"workflow": "w", "step": "b", "facility": "F1"})
    group = UnmatchedGroup("w", "b", "F1", 1, 0, NOW - MINUTE, ("e1",), ("B1",))
    done = cleared(waiting, Findings(unmatched=(group,)), CONFIG, NOW)
    assert done["summary"] == "w at F1 cleared: 1 b events match no transaction"
    assert (done["waiting"], done["aged"]) == ("1", "0")
    assert "examples" not in done and "example_links" not in done


def _burning(rates: dict[str, float | None], counts: dict[str, tuple[int, int]]) -> SloStatus:
    return SloStatus(
        slo="w_e2e",
        workflow="w",
        step=None,
        group={"facility": "F1"},
        objective=0.9,
        window="1d",
        status="ok",
        compliance=0.95,
        good=95,
        bad=5,
        late=3,
        overdue=2,
        failed=0,
        total=100,
        budget_remaining=0.5,
        burn_rates=rates,
        amount_at_risk=Decimal("0"),
        window_counts=counts,
    )


def test_burn_rate_cleared_names_the_window_that_fell_under_the_factor() -> None:
    # The helpers' SLOs: w_e2e's window is 1d, so the workbook's ticket pair 3x over
    # 1d/2h scales to 48m/4m.
    record = fired("slo_burn_rate", {"slo": "w_e2e", "workflow": "w", "facility": "F1"})
    record.annotations.update(long_window="48m", short_window="4m")
    judged = {"48m": (40, 50), "4m": (8, 8)}

    def summary(rates: dict[str, float | None]) -> str:
        found = Findings(statuses=(_burning(rates, judged),))
        return cleared(record, found, config(), NOW)["summary"]

    # The long window still burns 5x; the short one fell to 0: that is what cleared.
    assert summary({"48m": 5.0, "4m": 0.0}) == (
        "w_e2e: w at F1 cleared: burns its error budget 0.0x over 4m, under 3x (5.0x over 48m)"
    )
    assert summary({"48m": 2.5, "4m": 4.0}) == (
        "w_e2e: w at F1 cleared: burns its error budget 2.5x over 48m, under 3x (4.0x over 4m)"
    )
    assert summary({"48m": 0.0, "4m": None}) == (
        "w_e2e: w at F1 cleared: burns its error budget 0.0x over 48m and nothing judged"
        " over 4m, under 3x"
    )
    # Both still over 3x: with a guard of 60 events, the 50 judged over 48m clear it.
    strict = config(SLOS_GUARDED)
    found = Findings(statuses=(_burning({"48m": 5.0, "4m": 4.0}, judged),))
    assert cleared(record, found, strict, NOW)["summary"] == (
        "w_e2e: w at F1 cleared: 50 judged over 48m, fewer than the 60 the rule needs"
        " (burns its error budget 5.0x over 48m and 4.0x over 4m)"
    )


SLOS_GUARDED = """\
slos:
  - name: w_e2e
    indicator: {workflow: w}
    objective: 0.9
    window: 1d
    alerting: {min_events: 60}
"""
