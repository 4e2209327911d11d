"""The unmatched fan-in rule on the embedded engine: expected alerts worked out by hand.

At NOW (rule: older_than 3d, count 3):

- rev / gl_journal / F1: j1 (4 days, waits for batch B1), j2 (2 days, B2), j4 (10
  minutes, B4) unmatched; j3 (5 days) was unmatched, then matched (a newer version):
  3 waiting, 1 aged (j1) -> fires on age (and on count: 3 >= 3), oldest 4d 0h.
- rev / gl_journal / F2: k1, k2, k3 (1 hour) -> 3 waiting, none aged: fires on count.
- cash / cash_gl / F3: c1 exactly 3 days -> 1 waiting, 1 aged: fires on age.
"""

from __future__ import annotations

import datetime as dt

import pytest

import correlator.schema  # noqa: F401 - registers the correlator's migrations
from alerts import MemoryNotifier, list_alerts
from alerts.evaluation import evaluate_all
from alerts.unmatched import unmatched_candidates
from correlator import UnmatchedGroup, unmatched_groups
from correlator.unmatched import COLUMNS, UNMATCHED_EVENTS
from stitchboard.config.slos import UnmatchedRule
from stitchboard.store import Store
from tests.alerts_helpers import DAY, HOUR, MINUTE, NS, config, migrate_alerts, when

NOW = int(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC).timestamp()) * NS
RULE = UnmatchedRule.model_validate(
    {"older_than": "3d", "count": 3, "annotations": {"runbook_url": "https://rb/unmatched"}}
)


def _row(
    event_id: str,
    age_ns: int,
    facility: str,
    batch: str,
    *,
    workflow: str = "rev",
    step: str = "gl_journal",
    matched: int = 0,
    version: int = 1,
) -> tuple[object, ...]:
    return (
        workflow,
        step,
        event_id,
        when(NOW - age_ns),
        facility,
        "ERP_GL",
        "gl.journal.post",
        ["charge_batch"],
        [batch],
        {"journal": f"JE-{event_id}", "charge_batch": batch},
        matched,
        version,
    )


@pytest.fixture
def waiting(store: Store) -> Store:
    migrate_alerts(store)
    for table in (UNMATCHED_EVENTS.name, "transactions", "events", "alert_state"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    rows = [
        _row("j1", 4 * DAY, "F1", "B1"),
        _row("j2", 2 * DAY, "F1", "B2"),
        _row("j3", 5 * DAY, "F1", "B3"),
        _row("j3", 5 * DAY, "F1", "B3", matched=1, version=2),
        _row("j4", 10 * MINUTE, "F1", "B4"),
        *(_row(f"k{i}", HOUR, "F2", f"K{i}") for i in (1, 2, 3)),
        _row("c1", 3 * DAY, "F3", "T1", workflow="cash", step="cash_gl"),
    ]
    store.insert(UNMATCHED_EVENTS.name, COLUMNS, rows)
    return store


def test_groups_are_counted_in_clickhouse(waiting: Store) -> None:
    groups = unmatched_groups(waiting, NOW, 3 * DAY)
    assert groups == [
        UnmatchedGroup("cash", "cash_gl", "F3", 1, 1, NOW - 3 * DAY, ("c1",), ("T1",)),
        UnmatchedGroup(
            "rev", "gl_journal", "F1", 3, 1, NOW - 4 * DAY, ("j1", "j2", "j4"), ("B1", "B2", "B4")
        ),
        UnmatchedGroup(
            "rev", "gl_journal", "F2", 3, 0, NOW - HOUR, ("k1", "k2", "k3"), ("K1", "K2", "K3")
        ),
    ]


def test_alerts_on_age_or_count(waiting: Store) -> None:
    found = unmatched_candidates(RULE, unmatched_groups(waiting, NOW, 3 * DAY), NOW, "http://c")
    by = {c.labels["facility"]: c for c in found}
    assert sorted(by) == ["F1", "F2", "F3"]
    f1 = by["F1"]
    assert f1.labels == {
        "rule": "unmatched",
        "workflow": "rev",
        "step": "gl_journal",
        "facility": "F1",
    }
    assert (f1.severity, f1.value) == ("ticket", 1.0)
    assert f1.annotations["summary"] == (
        "rev at F1: 3 gl_journal events match no transaction, the oldest for 4d 0h"
    )
    assert f1.annotations["description"] == "1 waiting longer than 3d; 3 waiting (limit 3)"
    assert f1.annotations["examples"] == "j1 j2 j4"
    assert f1.annotations["waiting_for"] == "B1 B2 B4"
    assert f1.annotations["example_links"].split() == [
        f"http://c/api/v1/unmatched-events?key={b}" for b in ("B1", "B2", "B4")
    ]
    assert f1.annotations["runbook_url"] == "https://rb/unmatched"
    assert (by["F2"].value, by["F2"].annotations["description"]) == (3.0, "3 waiting (limit 3)")
    assert by["F2"].annotations["oldest_age"] == "1h 0m"
    assert (by["F3"].value, by["F3"].annotations["oldest_age"]) == (1.0, "3d 0h")

    # A higher count limit leaves the age: F2 no longer fires; off entirely, nothing.
    stricter = RULE.model_copy(update={"count": 4})
    found = unmatched_candidates(stricter, unmatched_groups(waiting, NOW, 3 * DAY), NOW, "")
    assert sorted(c.labels["facility"] for c in found) == ["F1", "F3"]
    assert by["F1"].fingerprint == found[1].fingerprint  # the same alert, whatever fired it
    neither = RULE.model_copy(update={"count": None, "older_than": None})
    assert unmatched_candidates(neither, unmatched_groups(waiting, NOW, 0), NOW, "") == []


def test_an_evaluation_fires_then_resolves_when_the_batches_arrive(waiting: Store) -> None:
    cfg = config("""
alerts:
  unmatched: {older_than: 3d, count: 3}
  idle_feeds: {enabled: false}
  route: {group_wait: 0s}
""")
    notifier = MemoryNotifier()
    evaluate_all(waiting, cfg, notifier, when(NOW))
    firing = {a.labels["facility"] for a in list_alerts(waiting, ["firing"])}
    assert firing == {"F1", "F2", "F3"}
    assert {n.status for n in notifier.notices} == {"firing"}

    # The charges of B1 (F1) and K1 (F2) arrive: j1, k1 match. F1 keeps j2, j4 (2
    # waiting, none aged) and F2 k2, k3: both under both limits now; F3 still fires.
    store = waiting
    store.insert(
        UNMATCHED_EVENTS.name,
        COLUMNS,
        [
            _row("j1", 4 * DAY, "F1", "B1", matched=1, version=3),
            _row("k1", HOUR, "F2", "K1", matched=1, version=3),
        ],
    )
    notifier = MemoryNotifier()
    # One group_interval (5m, the default) after the first notice the resolve goes out.
    evaluate_all(store, cfg, notifier, when(NOW + 5 * MINUTE))
    assert {a.labels["facility"] for a in list_alerts(store, ["firing"])} == {"F3"}
    assert {a.labels["facility"] for a in list_alerts(store, ["resolved"])} == {"F1", "F2"}
    resolved = [n for n in notifier.notices if n.status == "resolved"]
    assert sorted(a.labels["facility"] for n in resolved for a in n.alerts) == ["F1", "F2"]
