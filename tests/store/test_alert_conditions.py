"""Overdue high-value, error-spike and idle-feed rules on the embedded engine, by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from alerts.conditions import (
    error_candidates,
    error_rows,
    feed_rows,
    idle_candidates,
    in_business_hours,
    overdue_candidates,
    overdue_rows,
)
from stitchboard.config.slos import BusinessHours, IdleFeedRule, OverdueRule
from stitchboard.store import Store
from tests.alerts_helpers import MINUTE, NS, config, insert_transactions, tx, when

NOW = int(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC).timestamp()) * NS
CONFIG = config("")
EVENT_COLUMNS = (
    "event_id",
    "event_time",
    "observed_time",
    "source_kind",
    "source",
    "facility",
    "system",
    "operation",
    "status",
)


@pytest.fixture(scope="module")
def loaded(store: Store) -> Store:
    for table in ("transactions", "events"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    insert_transactions(
        store,
        [
            tx("big", "F1", "in_progress", now=NOW, breach=NOW - MINUTE, amount="12000.00"),
            tx("mid", "F1", "overdue", now=NOW, breach=NOW - 60 * MINUTE, amount="500.00"),
            tx("small", "F1", "in_progress", now=NOW, breach=NOW - 2 * MINUTE, amount="300.50"),
            tx("notyet", "F1", "in_progress", now=NOW, breach=NOW + MINUTE, amount="90000.00"),
            tx("done", "F1", "late", now=NOW, end=NOW - MINUTE, amount="70000.00"),
            tx("f2a", "F2", "in_progress", now=NOW, breach=NOW - MINUTE, amount="10.00"),
            tx("f2b", "F2", "in_progress", now=NOW, breach=NOW - MINUTE),
        ],
    )

    def ev(i: str, minutes_ago: int, system: str, status: str, facility: str = "F1"):
        t = when(NOW - minutes_ago * MINUTE)
        return (i, t, t, "otlp", "test", facility, system, "op", status)

    store.insert(
        "events",
        EVENT_COLUMNS,
        [
            *(ev(f"a{i}", i, "SYS_A", "error") for i in range(5)),  # 5 errors in 10 minutes
            ev("a0", 0, "SYS_A", "error"),  # a re-sent duplicate: still 5
            ev("a-old", 11, "SYS_A", "error"),  # outside the window
            *(ev(f"b{i}", i, "SYS_B", "error") for i in range(4)),  # 4: below 5
            ev("b-ok", 45, "SYS_B", "ok"),
        ],
    )
    return store


def test_overdue_per_workflow_and_facility(loaded: Store) -> None:
    rows = {(r.workflow, r.facility): r for r in overdue_rows(loaded, 10000, NOW)}
    f1 = rows[("w", "F1")]
    # big, mid, small are past their breach deadlines; notyet is not due, done is closed.
    assert (f1.count, f1.high_value, str(f1.amount)) == (3, 1, "12800.50")
    assert f1.examples == ("big", "mid", "small")  # largest amounts first
    f2 = rows[("w", "F2")]
    assert (f2.count, f2.high_value, str(f2.amount)) == (2, 0, "10.00")

    rule = OverdueRule.model_validate({"amount": 10000, "count": 2})
    found = {c.labels["facility"]: c for c in overdue_candidates(rule, rows.values(), "http://c")}
    assert found["F1"].annotations["description"] == (
        "1 worth at least $10,000; 3 overdue (limit 2)"
    )
    assert found["F1"].annotations["summary"] == (
        "w at F1: 3 transactions overdue, $12,800.50 at risk"
    )
    assert found["F1"].annotations["example_links"].split()[0] == (
        "http://c/api/v1/transactions/big"
    )
    assert found["F2"].annotations["description"] == "2 overdue (limit 2)"
    # The high-value count is the query's (the rule's amount goes into it).
    strict = OverdueRule.model_validate({"amount": 20000, "count": 4})
    assert overdue_candidates(strict, overdue_rows(loaded, 20000, NOW), "http://c") == []


def test_error_spike_counts_distinct_failed_hops_in_the_window(loaded: Store) -> None:
    rows = error_rows(loaded, 10 * MINUTE, NOW)
    assert rows == [("SYS_A", "F1", 5), ("SYS_B", "F1", 4)]
    [spike] = error_candidates(CONFIG, rows)
    assert spike.labels == {"rule": "error_spike", "system": "SYS_A", "facility": "F1"}
    assert spike.value == 5.0
    assert spike.annotations["summary"] == "5 failed hops from SYS_A at F1 in 10m"


def test_idle_feeds_discovered_and_declared(loaded: Store) -> None:
    rule = IdleFeedRule.model_validate(
        {
            "idle_after": "30m",
            "discover_min_events": 2,
            "feeds": [{"system": "SYS_C", "facility": "F2"}],
        }
    )
    rows = feed_rows(loaded, CONFIG, rule, NOW)
    assert [(r.system, r.facility, r.last_ns) for r in rows] == [
        ("SYS_A", "F1", NOW),
        ("SYS_B", "F1", NOW),
        ("SYS_C", "F2", None),  # declared, never heard from
    ]
    later = NOW + 31 * MINUTE
    found = idle_candidates(CONFIG, rule, rows, later)
    assert [(c.labels["system"], c.value) for c in found] == [
        ("SYS_A", 31 * 60.0),
        ("SYS_B", 31 * 60.0),
        ("SYS_C", None),
    ]
    assert found[0].annotations["summary"] == "Nothing received from SYS_A at F1 for 31 minutes"
    assert [c.labels["system"] for c in idle_candidates(CONFIG, rule, rows, NOW + 29 * MINUTE)] == [
        "SYS_C"
    ]


def test_business_hours_in_the_facility_time_zone() -> None:
    hours = BusinessHours(start=7, end=19)
    # F1 is America/Chicago, on daylight time from 2026-03-08: 12:00Z is 07:00 local.
    tuesday_7am = int(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC).timestamp()) * NS
    assert in_business_hours(hours, CONFIG, "F1", tuesday_7am)
    assert not in_business_hours(hours, CONFIG, "F1", tuesday_7am - NS)
    saturday = int(dt.datetime(2026, 3, 14, 15, 0, tzinfo=dt.UTC).timestamp()) * NS
    assert not in_business_hours(hours, CONFIG, "F1", saturday)


def test_an_idle_feed_is_judged_by_receipt_not_by_event_time(loaded: Store) -> None:
    """A history replay (old event times, received now) keeps its feed alive; a feed
    whose stamps look recent but that has sent nothing for 40 minutes is idle."""
    store = loaded
    rows = [
        # SYS_R replays history: stamped 3 h ago, received 1 minute ago.
        *(
            (
                f"r{i}",
                when(NOW - 180 * MINUTE),
                when(NOW - MINUTE),
                "otlp",
                "t",
                "F1",
                "SYS_R",
                "op",
                "ok",
            )
            for i in range(3)
        ),
        # SYS_S: stamped 1 minute ago by a skewed clock, last received 40 minutes ago.
        *(
            (
                f"s{i}",
                when(NOW - MINUTE),
                when(NOW - (40 + i) * MINUTE),
                "otlp",
                "t",
                "F1",
                "SYS_S",
                "op",
                "ok",
            )
            for i in range(3)
        ),
    ]
    store.insert("events", EVENT_COLUMNS, rows)
    rule = IdleFeedRule.model_validate({"idle_after": "30m", "discover_min_events": 2})
    feeds = [r for r in feed_rows(store, CONFIG, rule, NOW) if r.system in ("SYS_R", "SYS_S")]
    assert [(r.system, r.last_ns) for r in feeds] == [
        ("SYS_R", NOW - MINUTE),
        ("SYS_S", NOW - 40 * MINUTE),
    ]
    [idle] = idle_candidates(CONFIG, rule, feeds, NOW)
    assert (idle.labels["system"], idle.value) == ("SYS_S", 40 * 60.0)
    assert idle.annotations["summary"] == "Nothing received from SYS_S at F1 for 40 minutes"
