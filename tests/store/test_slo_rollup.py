"""The SLI rollup counts exactly what a scan of ``transactions`` counts, after every
write of the real correlator: new transactions, updates, late completions,
failures, and rows that went away.

Seeded random traffic for workflow ``w`` (tests/alerts_helpers.py) at three
facilities and two departments is correlated in rounds at a moving clock; after
each round the rollup is refreshed and every SLO's counts (the SLO window, a
per-facility calendar start, four burn-rate windows, timeslices) and the overdue
rule's figures are compared with the scan's at several instants.
"""

from __future__ import annotations

import random

import pytest

from alerts import overdue
from alerts.conditions import overdue_rows
from alerts.rollup import refresh, rollup_relation
from alerts.sli import GroupCounts, group_counts, scan_relation
from correlator import Correlator
from correlator.repository import TransactionSink
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event
from stitchboard.store import Store
from tests.alerts_helpers import DAY, HOUR, MINUTE, NS, config, migrate_alerts
from tests.correlator_helpers import ev

T0 = 1_773_144_000 * NS  # 2026-03-10T12:00Z
SLOS = """\
slos:
  - {name: e2e, indicator: {workflow: w}, objective: 0.9, window: 1d}
  - name: e2e_warn_dept
    indicator: {workflow: w, threshold: warn}
    objective: 0.9
    window: 1d
    grouping: [facility, dept]
  - {name: b, indicator: {workflow: w, step: b}, objective: 0.9, window: 1d}
  - name: b_warn_sliced
    indicator: {workflow: w, step: b, threshold: warn}
    objective: 0.8
    window: 1d
    budgeting: timeslices
    timeslice: 1h
"""
CONFIG: SlasConfig = config(SLOS)
WINDOWS = {"5m": 5 * MINUTE, "1h": HOUR, "6h": 6 * HOUR, "1d": DAY}


def _traffic(rng: random.Random, start: int, count: int, tag: str) -> list[Event]:
    """Transactions starting within [start, start + 2h): a, then maybe b (on time, late,
    an error, or never), some b before a, amounts on a."""
    events = []
    for i in range(count):
        visit = f"{tag}{i}"
        facility = rng.choice(["F1", "F2", "F3"])
        dept = rng.choice(["cardio", "ortho"])
        a_at = start + rng.randrange(0, 2 * HOUR // NS) * NS + rng.randrange(NS)
        amount = str(rng.choice([None, "10.00", "2500.50"]) or "") or None
        events.append(
            ev("SYS_A", "send", a_at, facility=facility, visit=visit, dept=dept, amount=amount)
        )
        roll = rng.random()
        if roll < 0.8:
            b_at = a_at + rng.choice([10 * MINUTE, 45 * MINUTE, 90 * MINUTE, 3 * HOUR])
            status = "error" if roll < 0.08 else "ok"
            events.append(ev("SYS_B", "send", b_at, facility=facility, visit=visit, status=status))
    return events


def _compare(store: Store, at: int) -> int:
    """Every SLO's counts from the scan and the rollup at ``at``; returns groups compared."""
    compared = 0
    for slo in CONFIG.slos:
        starts: list[int | dict[str, int]] = [
            at - DAY,
            {"F1": at - 20 * HOUR, "F2": at - 7 * HOUR - 30 * NS, "F3": at - DAY},
        ]
        for start in starts:
            scan = group_counts(store, slo, at, start, WINDOWS, (), scan_relation)
            rolled = group_counts(store, slo, at, start, WINDOWS, (), rollup_relation)
            assert _plain(rolled) == _plain(scan), (slo.name, at, start)
            compared += len(scan)
    # The overdue rule's ledger, kept by the same refresh, against its scan.
    for threshold in (100.0, 5000.0):
        ledger = overdue.overdue_rows(store, threshold, at)
        assert ledger == overdue_rows(store, threshold, at), (at, threshold)
        compared += len(ledger)
    return compared


def _plain(rows: list[GroupCounts]) -> list[tuple[object, ...]]:
    return [
        (
            tuple(r.group.items()),
            r.good,
            r.late,
            r.overdue,
            r.failed,
            r.amount_at_risk,
            tuple((k, v.good, v.bad) for k, v in r.windows.items()),
            r.good_slices,
            r.total_slices,
        )
        for r in rows
    ]


@pytest.fixture
def empty(store: Store) -> Store:
    migrate_alerts(store)
    for table in (
        "transactions",
        "slo_ledger",
        "slo_rollup",
        "slo_rollup_marks",
        "open_deadlines",
    ):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    return store


def test_rollup_equals_the_scan_after_every_round(empty: Store) -> None:
    store, rng = empty, random.Random(10)
    correlator = Correlator(CONFIG)
    sink = TransactionSink(store)
    first = refresh(store, list(CONFIG.slos))
    assert first.rebuilt
    compared = 0
    clock = T0
    for round_ in range(5):
        correlator.add(_traffic(rng, clock - 2 * HOUR, 40, f"r{round_}v"))
        clock += 75 * MINUTE
        sink.write(correlator.flush(now=clock))
        sink.write(correlator.sweep(now=clock))
        result = refresh(store, list(CONFIG.slos))
        assert not result.rebuilt and (result.since > 0 or round_ == 0)
        for at in (clock, clock + 7 * MINUTE + 13 * NS, clock + 2 * HOUR):
            compared += _compare(store, at)
    # Groups of all three facilities (and both departments) were compared each time.
    assert compared >= 5 * 3 * 2 * 3 * 3
    totals = group_counts(store, CONFIG.slos[0], clock, clock - DAY, {}, (), rollup_relation)
    assert sum(r.total for r in totals) > 100  # most of the 200 transactions are judged
    # Some are overdue (the traffic leaves about a fifth without step b), above $100 too.
    assert sum(r.high_value for r in overdue.overdue_rows(store, 100.0, clock)) > 0

    # Refreshing again with nothing new changes nothing.
    before = store.scalar(f"SELECT count() FROM {store.table('slo_ledger')}")
    refresh(store, list(CONFIG.slos))
    assert store.scalar(f"SELECT count() FROM {store.table('slo_ledger')}") == before


def test_rows_that_go_away_and_new_definitions_rebuild(empty: Store) -> None:
    store, rng = empty, random.Random(11)
    correlator = Correlator(CONFIG)
    sink = TransactionSink(store)
    correlator.add(_traffic(rng, T0 - 2 * HOUR, 60, "x"))
    sink.write(correlator.flush(now=T0))
    refresh(store, list(CONFIG.slos))
    _compare(store, T0)

    # The correlator's table is emptied and rewritten with part of the traffic.
    sink.truncate()
    fresh = Correlator(CONFIG)
    fresh.add(_traffic(random.Random(12), T0 - 2 * HOUR, 15, "y"))
    sink.write(fresh.flush(now=T0))
    assert refresh(store, list(CONFIG.slos)).rebuilt
    assert _compare(store, T0) > 0

    # A changed indicator is judged again from scratch.
    changed = config(SLOS.replace("step: b}", "step: a}"))
    assert refresh(store, list(changed.slos)).rebuilt
    for slo in changed.slos:
        scan = group_counts(store, slo, T0, T0 - DAY, WINDOWS, (), scan_relation)
        rolled = group_counts(store, slo, T0, T0 - DAY, WINDOWS, (), rollup_relation)
        assert _plain(rolled) == _plain(scan)


def test_an_idle_refresh_writes_nothing_and_a_late_row_at_the_mark_is_judged(
    empty: Store,
) -> None:
    from tests.alerts_helpers import insert_transactions, tx

    store = empty
    slos = list(CONFIG.slos)
    marks = f"SELECT count() FROM {store.table('slo_rollup_marks')}"
    # Two rows of one write (the same version), the second inserted after a refresh
    # (a write split over several inserts): the refresh after it judges it.
    insert_transactions(store, [tx("s1", "F1", "complete", now=T0, end=T0 - HOUR)])
    refresh(store, slos)
    written = store.scalar(marks)
    assert refresh(store, slos).upto == 1 and store.scalar(marks) == written  # idle
    insert_transactions(store, [tx("s2", "F2", "late", level="breach", now=T0, end=T0 - HOUR)])
    refresh(store, slos)
    assert store.scalar(marks) == written + 1
    [f1, f2] = group_counts(store, CONFIG.slos[0], T0, T0 - DAY, {}, (), rollup_relation)
    assert (f1.group, f1.good, f1.late) == ({"facility": "F1"}, 1, 0)
    assert (f2.group, f2.good, f2.late) == ({"facility": "F2"}, 0, 1)
    refresh(store, slos)
    assert store.scalar(marks) == written + 1  # idle again
