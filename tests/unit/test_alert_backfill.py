"""Which alerts a backlog holds, and what the hold says (pure: no store)."""

from __future__ import annotations

from alerts.backfill import Backlog, age, backfill_holds, backfilling, describe
from alerts.lifecycle import Candidate
from stitchboard.config import parse_config
from tests.alerts_helpers import BASE_YAML

NS = 1_000_000_000
MINUTE = 60 * NS
NOW = 1_773_144_000 * NS
CONFIG = parse_config(BASE_YAML + "alerts:\n  backfill: {max_hold: 7m}\n")
RULE = CONFIG.alerts.backfill


def cand(rule: str, **labels: str) -> Candidate:
    return Candidate(rule, "page", {"rule": rule, **labels}, {}, 1.0)


def test_defaults_and_what_counts_as_a_backlog() -> None:
    assert (RULE.lag.text, RULE.window.text, RULE.min_events, RULE.max_hold.text) == (
        "15m",
        "1m",
        10,
        "7m",
    )
    rows = [
        Backlog("SYS_A", "F1", 20, 10, NOW),  # 10 of 20: half, and 10: a backlog
        Backlog("SYS_A", "F2", 21, 10, NOW),  # 10 of 21: less than half
        Backlog("SYS_B", "F1", 9, 9, NOW),  # all of it, but fewer than 10
    ]
    assert [(r.system, r.facility) for r in backfilling(RULE, rows)] == [("SYS_A", "F1")]


def test_only_alerts_of_workflows_fed_by_the_backlog_wait() -> None:
    # w has steps from SYS_A and SYS_B (BASE_YAML); SYS_B at F1 receives a backlog.
    feeds = (Backlog("SYS_B", "F1", 30, 25, NOW - 2 * 86_400 * NS - 5 * MINUTE),)
    found = [
        cand("slo_burn_rate", slo="w_e2e", workflow="w", facility="F1"),
        cand("overdue", workflow="w", facility="F1"),
        cand("unmatched", workflow="w", step="b", facility="F1"),
        cand("overdue", workflow="w", facility="F2"),  # another facility
        cand("error_spike", system="SYS_B", facility="F1"),  # a rule a backlog cannot fake
        cand("idle_feed", system="SYS_B", facility="F1"),
    ]
    holds = backfill_holds(CONFIG, found, feeds, NOW)
    assert set(holds) == {c.fingerprint for c in found[:3]}
    [hold] = set(holds.values())
    assert hold.max_ns == 7 * MINUTE
    assert hold.reason == (
        "backlog arriving from SYS_B at F1 (25 of 30 events received in the last 1m were"
        " sent 15m or more before, the oldest 2d ago); new burn-rate, overdue and unmatched"
        " alerts of w at F1 wait until it is in (at most 7m)"
    )
    assert backfill_holds(CONFIG, found, (), NOW) == {}


def test_ages_for_people() -> None:
    assert [age(n) for n in (0, 59 * NS, 60 * NS, 3599 * NS, 3600 * NS, 86_400 * NS)] == [
        "0s",
        "59s",
        "1m",
        "59m",
        "1h",
        "1d",
    ]
    feed = Backlog("SYS_A", "F1", 1_200, 1_150, NOW - 13 * 86_400 * NS)
    assert describe(feed, RULE, NOW) == (
        "SYS_A at F1 (1,150 of 1,200 events received in the last 1m were sent 15m or more"
        " before, the oldest 13d ago)"
    )
