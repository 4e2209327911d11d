"""The overdue rule's ledger (``open_deadlines``) counts what a FINAL scan of
``transactions`` counts, right after each refresh, by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from alerts import overdue
from alerts.conditions import overdue_rows as scanned
from alerts.rollup import refresh
from stitchboard.store import Store
from tests.alerts_helpers import MINUTE, config, emptied_judgements, insert_transactions, tx

NOW = 1_773_144_000 * 1_000_000_000  # 2026-03-10T12:00Z
SLOS = list(config().slos)


def _v(row: tuple[object, ...], version: int) -> tuple[object, ...]:
    """The row as a later write of the correlator (a higher version)."""
    return (*row[:-2], version, row[-1])


@pytest.fixture
def empty(store: Store) -> Store:
    return emptied_judgements(store)


def _both(store: Store, threshold: float, at: int) -> list[overdue.OverdueRow]:
    ledger = overdue.overdue_rows(store, threshold, at)
    assert ledger == scanned(store, threshold, at)
    # A window this small nets every transaction once any -1 row is unmerged (6), or
    # takes one off within the window (8): the same figures either way.
    for window in (6, 8):
        assert overdue.overdue_rows(store, threshold, at, window) == ledger, window
    return ledger


def test_the_ledger_follows_every_new_version(empty: Store) -> None:
    store = empty
    # Unmerged: a closed transaction's -1 lies beside its +1 (as between merges).
    store.command(f"SYSTEM STOP MERGES {store.table('open_deadlines')}")
    big = tx("big", "F1", "in_progress", now=NOW, breach=NOW - MINUTE, amount="12000.00")
    mid = tx("mid", "F1", "overdue", now=NOW, breach=NOW - 60 * MINUTE, amount="500.00")
    later = tx("later", "F1", "in_progress", now=NOW, breach=NOW + 10 * MINUTE, amount="9.99")
    none = tx("none", "F2", "in_progress", now=NOW, breach=NOW - MINUTE)  # no amount
    done = tx("done", "F2", "late", now=NOW, end=NOW - MINUTE, amount="70000.00")
    insert_transactions(store, [big, mid, later, none, done])
    assert refresh(store, SLOS).rebuilt
    [f1, f2] = _both(store, 10000, NOW)
    # big and mid are past their breach deadline (later is not yet); done is closed.
    assert (f1.facility, f1.count, f1.high_value, f1.amount) == ("F1", 2, 1, Decimal("12500"))
    assert f1.examples == ("big", "mid")
    assert (f2.facility, f2.count, f2.high_value, f2.amount) == ("F2", 1, 0, Decimal("0"))
    # Ten minutes on, later is overdue too: $12,509.99 at F1.
    [f1, _] = _both(store, 10000, NOW + 10 * MINUTE)
    assert (f1.count, f1.amount, f1.examples) == (3, Decimal("12509.99"), ("big", "mid", "later"))

    # New versions: big completes, mid's amount grows, none is merged away (deleted),
    # later's deadline moves back by an hour; done is written again unchanged.
    insert_transactions(
        store,
        [
            _v(tx("big", "F1", "complete", now=NOW, end=NOW, amount="12000.00"), 2),
            _v(tx("mid", "F1", "overdue", now=NOW, breach=NOW - 60 * MINUTE, amount="800"), 2),
            _v(tx("none", "F2", "in_progress", now=NOW, breach=NOW - MINUTE, deleted=1), 2),
            _v(tx("later", "F1", "in_progress", now=NOW, breach=NOW + 70 * MINUTE), 3),
            _v(done, 3),
        ],
    )
    assert not refresh(store, SLOS).rebuilt
    [f1] = _both(store, 10000, NOW + 10 * MINUTE)
    assert (f1.count, f1.high_value, f1.amount, f1.examples) == (1, 0, Decimal("800"), ("mid",))
    [f1] = _both(store, 700, NOW + 70 * MINUTE)
    assert (f1.count, f1.high_value, f1.amount) == (2, 1, Decimal("800"))
    # Open: mid and later, one row each (however many versions went by).
    held = store.rows(
        f"SELECT id, sum(n) FROM {store.table('open_deadlines')} GROUP BY id ORDER BY id"
    )
    assert [(i, int(n)) for i, n in held if n != 0] == [("later", 1), ("mid", 1)]
    # ...while big's +1 and -1 are both still there: the examples above took it off.
    big_rows = store.rows(
        f"SELECT n FROM {store.table('open_deadlines')} WHERE id = 'big' ORDER BY n"
    )
    assert [int(n) for (n,) in big_rows] == [-1, 1]

    # Refreshing with nothing new, then with a write at the mark again, changes nothing.
    before = store.scalar(f"SELECT count() FROM {store.table('open_deadlines')}")
    refresh(store, SLOS)
    insert_transactions(store, [_v(done, 3)])
    refresh(store, SLOS)
    assert store.scalar(f"SELECT count() FROM {store.table('open_deadlines')}") == before
    assert _both(store, 700, NOW + 70 * MINUTE)[0].count == 2
    store.command(f"SYSTEM START MERGES {store.table('open_deadlines')}")


def test_a_store_with_rows_gone_is_rebuilt(empty: Store) -> None:
    store = empty
    insert_transactions(
        store, [tx("gone", "F1", "in_progress", now=NOW, breach=NOW - MINUTE, amount="5")]
    )
    refresh(store, SLOS)
    assert [r.count for r in _both(store, 1, NOW)] == [1]
    store.command(f"TRUNCATE TABLE {store.table('transactions')}")
    insert_transactions(
        store, [tx("new", "F3", "overdue", now=NOW, breach=NOW - MINUTE, amount="2")]
    )
    assert refresh(store, SLOS).rebuilt
    [f3] = _both(store, 1, NOW)
    assert (f3.facility, f3.count, f3.high_value, f3.examples) == ("F3", 1, 1, ("new",))


def test_the_next_high_value_deadline(empty: Store) -> None:
    store = empty
    insert_transactions(
        store,
        [
            tx("past", "F1", "in_progress", now=NOW, breach=NOW - MINUTE, amount="50000"),
            tx("small", "F1", "in_progress", now=NOW, breach=NOW + MINUTE, amount="99.99"),
            tx("big", "F2", "in_progress", now=NOW, breach=NOW + 5 * MINUTE, amount="100"),
            tx("bigger", "F2", "overdue", now=NOW, breach=NOW + 9 * MINUTE, amount="700"),
            tx("closed", "F3", "complete", now=NOW, end=NOW, amount="90000"),
        ],
    )
    refresh(store, SLOS)
    # After now, worth at least $100: big (5 minutes on); then bigger; small never.
    assert overdue.next_deadline(store, 100, NOW) == NOW + 5 * MINUTE
    assert overdue.next_deadline(store, 100, NOW + 5 * MINUTE) == NOW + 9 * MINUTE
    assert overdue.next_deadline(store, 50, NOW) == NOW + MINUTE
    assert overdue.next_deadline(store, 1000, NOW) is None
    assert overdue.next_deadline(store, None, NOW) is None  # no amount rule: no wake-up
    # big completes: its deadline no longer wakes anyone (once refreshed).
    insert_transactions(store, [_v(tx("big", "F2", "complete", now=NOW, end=NOW), 2)])
    refresh(store, SLOS)
    assert overdue.next_deadline(store, 100, NOW) == NOW + 9 * MINUTE
