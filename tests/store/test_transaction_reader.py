"""The in-memory ``TransactionReader`` answers exactly as the ClickHouse one does."""

from __future__ import annotations

import time

import pytest

from correlator import (
    MemoryTransactions,
    StoreTransactions,
    TransactionFilter,
    TransactionReader,
)
from correlator.service import CorrelatorService
from stitchboard.events import EVENT_COLUMNS
from stitchboard.store import Store
from tests.correlator_helpers import HOUR
from tests.unit.test_transaction_reader import CONFIG, EVENTS, T0

# ``missed_steps`` is stored as of the correlator's last write (wall clock) while the
# memory reader evaluates at ``now``: compare at the wall clock, long after every deadline.
NOW = time.time_ns()

FILTERS = [
    TransactionFilter(),
    TransactionFilter(workflow="discharge_to_revenue"),
    TransactionFilter(status="overdue"),
    TransactionFilter(status="late"),
    TransactionFilter(flag="missing_step"),
    TransactionFilter(key_values=("C2a",)),
    TransactionFilter(facility="NMC01", since=T0 + HOUR),
    TransactionFilter(until=T0 + HOUR),
]


@pytest.fixture(scope="module")
def readers(store: Store) -> tuple[TransactionReader, TransactionReader]:
    for table in ("events", "transactions", "transaction_keys"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    store.insert("events", EVENT_COLUMNS, [e.row() for e in EVENTS])
    CorrelatorService(store, CONFIG).full_pass()
    return StoreTransactions(store, CONFIG), MemoryTransactions(CONFIG, EVENTS)


@pytest.mark.parametrize("where", FILTERS, ids=repr)
def test_pages_are_the_same(readers, where: TransactionFilter) -> None:
    stored, memory = readers
    assert memory.list_transactions(where, 100, NOW) == stored.list_transactions(where, 100, NOW)


def test_paging_cursors_are_the_same(readers) -> None:
    stored, memory = readers
    where = TransactionFilter(workflow="discharge_to_revenue")
    first_stored, cursor_stored = stored.list_transactions(where, 2, NOW)
    first_memory, cursor_memory = memory.list_transactions(where, 2, NOW)
    assert (first_memory, cursor_memory) == (first_stored, cursor_stored)
    assert cursor_stored is not None


def test_details_are_the_same(readers) -> None:
    stored, memory = readers
    items, _ = stored.list_transactions(TransactionFilter(), 100, NOW)
    assert items
    for item in items:
        assert memory.get_transaction(item["id"], NOW) == stored.get_transaction(item["id"], NOW)
    assert memory.get_transaction("0" * 32, NOW) is None
    assert stored.get_transaction("0" * 32, NOW) is None
