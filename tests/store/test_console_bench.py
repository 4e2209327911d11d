"""The console bench writes transaction rows itself and records them as correlated
(``correlator.mark_correlated``): a server started on that store must resume from the
mark and keep every row, where a full pass would retire them (no events behind them)."""

from __future__ import annotations

import time

from correlator import CorrelatorService, mark_correlated
from stitchboard.events import EVENT_COLUMNS
from tests.correlator_helpers import shipped_config
from tests.dashboard_seed import seed_events

CONFIG = shipped_config()


def _live(store) -> int:
    return int(
        store.scalar(f"SELECT count() FROM {store.table('transactions')} FINAL WHERE deleted = 0")
    )


def _forget_signature(store) -> None:
    """As after a slas.yaml change: the stored transactions were computed under another."""
    store.insert(
        "correlator_state",
        ("name", "number", "text", "version"),
        [("signature", 0, "other", time.time_ns())],
    )


def test_marked_transactions_survive_a_start_and_unmarked_ones_are_retired(store) -> None:
    store.insert("events", EVENT_COLUMNS, [e.row() for e in seed_events()])
    CorrelatorService(store, CONFIG).full_pass()
    written = _live(store)
    assert written > 0  # the precondition: the seed made transactions
    # The rows stay, the events behind them go: what the bench's generator leaves.
    store.command(f"TRUNCATE TABLE {store.table('events')}")
    _forget_signature(store)

    mark_correlated(store, CONFIG, upto=time.time_ns(), version=time.time_ns())
    assert CorrelatorService(store, CONFIG).start_up() == 0  # resumed: nothing new to read
    assert _live(store) == written

    _forget_signature(store)  # the control: without the mark, a start runs a full pass
    CorrelatorService(store, CONFIG).start_up()
    assert _live(store) == 0
