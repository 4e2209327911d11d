"""Rewrites spread over the whole window (claims and purchase orders complete weeks
after they start) keep the rollup equal to a scan of ``transactions``: what the ledger
holds is looked up by key in ``slo_held``, which must always hold exactly the
ledger's net judgements; a refresh stopped part way is found and rebuilt.

Seeded random rounds: transactions over 30 days get new versions at random (some
twice between two refreshes, some retired with ``deleted = 1``, open ones completing
or going overdue), a few new ones arrive, and after each refresh every SLO's counts,
the overdue rule's figures and ``slo_held`` are compared with what they must be.
"""

from __future__ import annotations

import random

import pytest

from alerts import held, overdue, rollup
from alerts.conditions import overdue_rows
from alerts.rollup import refresh, rollup_relation
from alerts.sli import group_counts, scan_relation
from stitchboard.store import Store
from tests.alerts_helpers import (
    DAY,
    HOUR,
    MINUTE,
    config,
    emptied_judgements,
    insert_transactions,
    tx,
    when,
)

NOW = 1_773_144_000 * 1_000_000_000  # 2026-03-10T12:00Z
CONFIG = config("""\
slos:
  - {name: e2e, indicator: {workflow: w}, objective: 0.9, window: 30d}
  - name: e2e_warn_dept
    indicator: {workflow: w, threshold: warn}
    objective: 0.9
    window: 30d
    grouping: [facility, dept]
  - {name: b_warn, indicator: {workflow: w, step: b, threshold: warn}, objective: 0.8, window: 30d}
""")
SLOS = list(CONFIG.slos)
WINDOWS = {"1h": HOUR, "1d": DAY, "7d": 7 * DAY}


def _row(rng: random.Random, tx_id: str, version: int) -> tuple[object, ...]:
    """One version of transaction ``tx_id`` (its start fixed by the id) in a random state."""
    n = int(tx_id[1:])
    start = NOW - n * 2 * HOUR - 17 * MINUTE  # spread over 30 days
    facility = ("F1", "F2", "F3")[n % 3]
    keys = {"dept": rng.choice(["cardio", "ortho"])}
    amount = rng.choice([None, "10.00", "2500.50"])
    b_at = start + rng.choice([10, 45, 90]) * MINUTE
    b_level = "" if b_at - start < 30 * MINUTE else ("warn" if b_at - start < HOUR else "breach")
    state = rng.choice(["complete", "late", "in_progress", "overdue", "failed", "deleted"])
    if state in ("in_progress", "overdue"):
        row = tx(
            tx_id,
            facility,
            state,
            now=NOW,
            level="breach" if state == "overdue" else "",
            last=start,
            warn=start + 30 * MINUTE,
            breach=start + rng.choice([1, 3, 40 * 24]) * HOUR,  # passed, or weeks ahead
            amount=amount,
            steps=(["a", "b"], [start, 0], ["", ""]),
            keys=keys,
        )
    else:
        status = {"deleted": "complete"}.get(state, state)
        row = tx(
            tx_id,
            facility,
            status,
            now=NOW,
            level=rng.choice(["warn", "breach"]) if state == "late" else "",
            end=None if state == "failed" else b_at,
            last=b_at,
            amount=amount,
            steps=(["a", "b"], [start, b_at], ["", b_level]),
            keys=keys,
            deleted=int(state == "deleted"),
        )
    # id_time (and the start) is fixed per id, as the correlator's: versions collapse.
    fixed = when(start - HOUR)
    return (*row[:2], fixed, *row[3:6], fixed, *row[7:-2], version, row[-1])


@pytest.fixture
def empty(store: Store) -> Store:
    return emptied_judgements(store)


def _check(store: Store) -> int:
    """Rollup = scan for every SLO and window; overdue ledger = its scan; ``slo_held`` =
    the ledger's net judgements. Returns the groups compared."""
    compared = 0
    for slo in SLOS:
        for at in (NOW, NOW + 2 * DAY + 7 * MINUTE):
            scan = group_counts(store, slo, at, at - 30 * DAY, WINDOWS, (), scan_relation)
            rolled = group_counts(store, slo, at, at - 30 * DAY, WINDOWS, (), rollup_relation)
            assert rolled == scan, (slo.name, at)
            compared += len(scan)
    for threshold in (100.0, 5000.0):
        assert overdue.overdue_rows(store, threshold, NOW) == overdue_rows(store, threshold, NOW)
    cols = held.COLS
    net = store.rows(
        f"SELECT {cols}, sum(n) AS net FROM {store.table('slo_ledger')}"
        f" GROUP BY {cols} HAVING net != 0 ORDER BY slo, id"
    )
    kept = store.rows(
        f"SELECT {cols}, n FROM {store.table('slo_held')} WHERE n != 0 ORDER BY slo, id"
    )
    assert kept == net
    assert all(n == 1 for *_, n in net)
    return compared


def test_scattered_rewrites_keep_the_rollup_equal_to_the_scan(empty: Store) -> None:
    store, rng = empty, random.Random(20)
    ids = [f"t{i:03d}" for i in range(360)]  # every 2 h over 30 days
    version = 1
    insert_transactions(store, [_row(rng, i, version) for i in ids[:300]])
    assert refresh(store, SLOS).rebuilt
    compared = _check(store)
    for round_ in range(6):
        rows = []
        for tx_id in rng.sample(ids[:300], 25):  # anywhere in the 30 days
            for _ in range(rng.choice([1, 1, 2])):  # sometimes twice between refreshes
                version += 1
                rows.append(_row(rng, tx_id, version))
        for tx_id in ids[300 + 10 * round_ : 310 + 10 * round_]:  # new ones
            version += 1
            rows.append(_row(rng, tx_id, version))
        rng.shuffle(rows)  # versions are what order them, not the insert order
        insert_transactions(store, rows)
        done = refresh(store, SLOS)
        assert not done.rebuilt and done.since > 0, round_
        compared += _check(store)
    assert compared > 6 * 3 * 2 * 3  # every SLO had groups at every check
    # The scattered rewrites went through the key lookup: held and retracted rows.
    assert store.scalar(f"SELECT countIf(n < 0) FROM {store.table('slo_ledger')}") > 0


def test_a_refresh_stopped_part_way_rebuilds(empty: Store) -> None:
    store, rng = empty, random.Random(21)
    ids = [f"t{i:03d}" for i in range(120)]
    insert_transactions(store, [_row(rng, i, 1) for i in ids])
    refresh(store, SLOS)
    mark = rollup._mark(store)
    assert mark is not None and held.token(store) == str(mark.version)

    # New versions, then a refresh that stops after the ledger insert (before what is
    # held by key and the mark are written): running it again must not count twice.
    insert_transactions(store, [_row(rng, i, 2) for i in rng.sample(ids, 30)])
    held.set_token(store, held.DIRTY)
    held.stage_changed(store, mark.watermark)
    branches, params = rollup._judged_branches(store, SLOS, rebuild=False)
    held.stage(store, SLOS, branches, params)
    store.command(
        f"INSERT INTO {store.table('slo_ledger')} ({held.COLS}, n) {held.ledger_diff(store)}"
    )
    assert refresh(store, SLOS).rebuilt
    _check(store)

    # Held judgements of another mark (another server's, on a cluster): rebuilt too.
    held.set_token(store, "1")
    assert refresh(store, SLOS).rebuilt
    _check(store)
    insert_transactions(store, [_row(rng, i, 3) for i in rng.sample(ids, 10)])
    assert not refresh(store, SLOS).rebuilt
    _check(store)
