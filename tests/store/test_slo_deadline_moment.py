"""A late transaction counts as bad from the moment its deadline passed, also after it
completes: rows written by the real correlator, judged at chosen instants.

Workflow ``w`` (tests/alerts_helpers.py): step ``a``, then ``b`` within warn 30m /
breach 1h of ``a``; end to end within warn 1h / breach 2h. At F1, from T0:

- ``V1``: ``a`` at T0, ``b`` at T0+3h: overdue, then late. Its first missed deadlines:
  ``b`` warn T0+30m, ``b`` breach T0+1h (the end-to-end ones, T0+1h and T0+2h, later
  or equal);
- ``V2``: ``a`` at T0, ``b`` at T0+20m: good, judged at T0+20m;
- ``V3``: ``a`` at T0 and ``b`` at T0+10m reported an error: failed at T0+10m.

Windows start at whole minutes (a judgement at 12:00:00 is in a window from 12:00:59
back), so "not earlier" is checked a minute later; an overdue transaction counts
from the exact instant its deadline passes, checked a second before and at it.
"""

from __future__ import annotations

import pytest

from alerts.sli import GroupCounts, group_counts
from correlator import Correlator
from correlator.repository import TransactionSink
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event
from stitchboard.store import Store
from tests.alerts_helpers import HOUR, MINUTE, NS, config, migrate_alerts
from tests.correlator_helpers import ev

T0 = 1_773_144_000 * NS  # 2026-03-10T12:00Z
SLOS = """\
slos:
  - {name: e2e, indicator: {workflow: w}, objective: 0.9, window: 1d, facilities: [F1]}
  - name: e2e_warn
    indicator: {workflow: w, threshold: warn}
    objective: 0.9
    window: 1d
    facilities: [F1]
  - {name: b, indicator: {workflow: w, step: b}, objective: 0.9, window: 1d, facilities: [F1]}
  - name: b_warn
    indicator: {workflow: w, step: b, threshold: warn}
    objective: 0.9
    window: 1d
    facilities: [F1]
"""
CONFIG: SlasConfig = config(SLOS)


def _hop(system: str, at: int, visit: str, status: str = "ok") -> Event:
    return ev(system, "send", at, facility="F1", status=status, visit=visit)


def _write(store: Store, correlator: Correlator, sink: TransactionSink, now: int) -> None:
    sink.write(correlator.flush(now=now))


def _counts(store: Store, slo: str, now: int, since: int) -> GroupCounts:
    """Counts judged in [since, now] (the SLO window covers both)."""
    found = CONFIG.slo(slo)
    assert found is not None
    [row] = group_counts(store, found, now, now - 86_400 * NS, {"w": now - since})
    return row


def _bad_in(store: Store, slo: str, now: int, since: int) -> tuple[int, int]:
    """(good, bad) judged in [since, now]; (0, 0) when nothing is judged at all."""
    found = CONFIG.slo(slo)
    assert found is not None
    rows = group_counts(store, found, now, now - 86_400 * NS, {"w": now - since})
    if not rows:
        return 0, 0
    counts = rows[0].windows["w"]
    return counts.good, counts.bad


@pytest.fixture(scope="module")
def written(store: Store) -> Store:
    migrate_alerts(store)
    store.command(f"TRUNCATE TABLE {store.table('transactions')}")
    return store


def test_overdue_then_late_stays_counted_at_its_deadline(written: Store) -> None:
    store = written
    correlator = Correlator(CONFIG)
    sink = TransactionSink(store)
    correlator.add(
        [
            _hop("SYS_A", T0, "V1"),
            _hop("SYS_A", T0, "V2"),
            _hop("SYS_B", T0 + 20 * MINUTE, "V2"),
            _hop("SYS_A", T0, "V3"),
            _hop("SYS_B", T0 + 10 * MINUTE, "V3", status="error"),
        ]
    )
    _write(store, correlator, sink, T0 + 21 * MINUTE)

    # Before any deadline of V1: V2 good (T0+20m), V3 failed (T0+10m), V1 not counted.
    assert _bad_in(store, "e2e", T0 + 25 * MINUTE, T0) == (1, 1)
    # At T0+1h V1 passes its earliest breach deadline (b's) with nothing rewritten since
    # T0+21m: bad from exactly that instant, not a second before.
    assert _bad_in(store, "e2e", T0 + HOUR - NS, T0 + 11 * MINUTE) == (1, 0)
    assert _bad_in(store, "e2e", T0 + HOUR, T0 + 11 * MINUTE) == (1, 1)
    mid = _counts(store, "e2e", T0 + 90 * MINUTE, T0 + HOUR)
    assert (mid.good, mid.late, mid.overdue, mid.failed) == (1, 0, 1, 1)
    # The warn SLO counts V1 from b's warn deadline, T0+30m.
    assert _bad_in(store, "e2e_warn", T0 + 45 * MINUTE, T0 + 30 * MINUTE) == (0, 1)
    assert _bad_in(store, "e2e_warn", T0 + 45 * MINUTE, T0 + 31 * MINUTE) == (0, 0)

    # b finally arrives at T0+3h: V1 becomes late, and stays counted at T0+1h.
    correlator.add([_hop("SYS_B", T0 + 3 * HOUR, "V1")])
    _write(store, correlator, sink, T0 + 3 * HOUR + MINUTE)
    later = T0 + 4 * HOUR
    done = _counts(store, "e2e", later, T0)
    assert (done.good, done.late, done.overdue, done.failed) == (1, 1, 0, 1)
    assert _bad_in(store, "e2e", later, T0 + HOUR) == (0, 1)
    assert _bad_in(store, "e2e", later, T0 + HOUR + MINUTE) == (0, 0)  # not at T0+3h
    assert _bad_in(store, "e2e_warn", later, T0 + 30 * MINUTE) == (0, 1)
    assert _bad_in(store, "e2e_warn", later, T0 + 31 * MINUTE) == (0, 0)


def test_step_indicator_counts_at_the_steps_own_deadline(written: Store) -> None:
    store = written  # the rows the previous test left: V1 late, V2 good, V3 failed at b
    later = T0 + 4 * HOUR
    whole = _counts(store, "b", later, T0)
    # b of V1 late (breach T0+1h), of V2 on time (T0+20m), of V3 an error (T0+10m).
    assert (whole.good, whole.late, whole.overdue, whole.failed) == (1, 1, 0, 1)
    assert _bad_in(store, "b", later, T0 + HOUR) == (0, 1)
    assert _bad_in(store, "b", later, T0 + HOUR + MINUTE) == (0, 0)
    assert _bad_in(store, "b_warn", later, T0 + 30 * MINUTE) == (0, 1)
    assert _bad_in(store, "b_warn", later, T0 + 31 * MINUTE) == (0, 0)
    # The failure counts when b reported it, T0+10m; V2's good b at T0+20m.
    assert _bad_in(store, "b", later, T0 + 10 * MINUTE) == (1, 2)
    assert _bad_in(store, "b", later, T0 + 11 * MINUTE) == (1, 1)
    assert _bad_in(store, "b", later, T0 + 21 * MINUTE) == (0, 1)


def test_step_overdue_before_a_rewrite(written: Store) -> None:
    """An open transaction's step is overdue from its own deadline, whatever the row's age."""
    store = written
    store.command(f"TRUNCATE TABLE {store.table('transactions')}")
    correlator = Correlator(CONFIG)
    sink = TransactionSink(store)
    correlator.add([_hop("SYS_A", T0, "V4")])
    _write(store, correlator, sink, T0 + MINUTE)
    assert _bad_in(store, "b", T0 + 59 * MINUTE, T0) == (0, 0)
    assert _bad_in(store, "b", T0 + HOUR, T0 + HOUR) == (0, 1)
    assert _bad_in(store, "b_warn", T0 + HOUR, T0 + 30 * MINUTE) == (0, 1)
    assert _bad_in(store, "b_warn", T0 + HOUR, T0 + 31 * MINUTE) == (0, 0)
    overdue = _counts(store, "e2e", T0 + HOUR, T0)
    assert (overdue.overdue, overdue.total) == (1, 1)
