"""A correlator that falls behind catches up from the store: its queue overflowed, the
batches it did not queue are read back from ``events`` a page at a time, nothing is
lost or doubled, the backlog shows as pending (alerts hold on it), and queueing
resumes once it has caught up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from alerts.progress import RegistryProgress
from correlator.queries import TransactionFilter, list_transactions
from correlator.service import CorrelatorService
from stitchboard.events import EVENT_COLUMNS, Event
from stitchboard.store import Store
from stitchboard.writer import Batch
from tests.correlator_helpers import DAY, discharge_chain, shipped_config

CONFIG = shipped_config()
T0 = 1_773_064_800 * 1_000_000_000  # 2026-03-09T14:00:00Z
LATER = T0 + 30 * DAY
PAGE = 5  # batch_max: a page of the catch-up, and the most one correlation takes


@pytest.fixture
def empty(store: Store) -> Iterator[Store]:
    for table in ("events", "transactions", "transaction_keys", "lookup_hops"):
        store.command(f"TRUNCATE TABLE IF EXISTS {store.table(table)}")
    yield store


def visits(store: Store) -> list[tuple[str, str]]:
    items, _ = list_transactions(
        store, TransactionFilter(workflow="discharge_to_revenue"), 100, LATER
    )
    return sorted((item["keys"]["visit"][0], item["status"]) for item in items)


def deliver(store: Store, service: CorrelatorService, events: list[Event]) -> None:
    """What the writer does with one batch: insert it, then report it."""
    store.insert("events", EVENT_COLUMNS, [e.row() for e in events])
    batch = Batch()
    batch.add("events", EVENT_COLUMNS, [e.row() for e in events])
    service.on_batch(batch)


def started(store: Store, registry: CollectorRegistry) -> tuple[CorrelatorService, list[int]]:
    """A service past its startup (driven step by step here), recording the size of
    every batch of events it correlates."""
    service = CorrelatorService(
        store, CONFIG, registry, max_pending=10, batch_max=PAGE, watermark_margin=1.0
    )
    service.start_up(now=LATER)
    sizes: list[int] = []
    correlate = service.live.correlate

    def recorded(events: list[Event], now: int | None = None):  # type: ignore[no-untyped-def]
        sizes.append(len(events))
        return correlate(events, now)

    service.live.correlate = recorded  # type: ignore[method-assign]
    return service, sizes


def drain(service: CorrelatorService, now: int) -> int:
    steps = 0
    while service._cursor is not None or service._queue:
        service.step(now)
        steps += 1
        assert steps < 100, "the catch-up never ended"
    return steps


def test_an_overflowing_queue_catches_up_from_the_store(empty: Store) -> None:
    registry = CollectorRegistry()
    service, sizes = started(empty, registry)
    progress = RegistryProgress(registry)

    # Six writer batches of seven events: the first is queued (7 <= 10), the second
    # would make 14 > 10, so queueing stops there and the other five are not queued.
    for n in range(1, 7):
        deliver(empty, service, discharge_chain(T0 + n * 60 * 10**9, n, batch=f"B{n}"))
    assert service._pending == 7
    assert registry.get_sample_value("stitchboard_correlator_dropped_batches_total") == 5

    # First step: the queued batch (7 events, in parts of 5 and 2), then one page of 5
    # read from the store, which holds all 42 (the catch-up starts a margin before the
    # first batch it did not queue). 42 - 5 = 37 are still to be read.
    service.step(LATER)
    assert sizes == [5, 2, 5]
    assert registry.get_sample_value("stitchboard_correlator_pending_events") == 37
    reading = progress.read(100.0)
    assert reading is not None and reading.pending == 37
    # Nothing after the cursor is correlated: the watermark stays a margin behind it.
    assert service._cursor is not None
    place = max(service._cursor.since, service._cursor.at * 1000)
    assert service.watermark <= place - service.margin_ns

    assert not service.caught_up
    drain(service, LATER)
    assert service.caught_up
    assert max(sizes) == PAGE  # a backlog of any length is held a page at a time
    assert sum(sizes) >= 7 + 42  # the queued batch, then every stored event at least once
    assert visits(empty) == [(f"V{n}", "complete") for n in range(1, 7)]
    assert registry.get_sample_value("stitchboard_correlator_pending_events") == 0

    # Caught up: the next batch is queued again, not read from the store.
    deliver(empty, service, discharge_chain(T0 + DAY, 7, batch="B7"))
    assert service._pending == 7 and service._cursor is None
    service.step(LATER)
    assert len(visits(empty)) == 7
    assert registry.get_sample_value("stitchboard_correlator_dropped_batches_total") == 5

    # A restart resumes from the saved watermark: everything was correlated, so the
    # events it reads again change nothing.
    service._save_state(force=True)
    again = CorrelatorService(empty, CONFIG, watermark_margin=1.0)
    again.start_up(now=LATER)
    assert again.rewritten == 0
    assert visits(empty) == [(f"V{n}", "complete") for n in range(1, 8)]


def test_a_batch_stamped_before_the_cursor_is_read_when_queueing_resumes(empty: Store) -> None:
    """A batch whose ``inserted_at`` is earlier than rows already read (an insert that
    became visible late) and that was not queued is found by the re-read from a
    margin before the cursor, when the catch-up ends."""
    registry = CollectorRegistry()
    service, _ = started(empty, registry)
    for n in range(1, 4):  # 7 queued, then two batches not queued: catching up
        deliver(empty, service, discharge_chain(T0 + n * 60 * 10**9, n, batch=f"B{n}"))
    service.step(LATER)
    assert service._cursor is not None and not service._closing
    read_up_to = service._cursor.at  # microseconds
    # Stamped half a second before the rows read so far, visible only now.
    late = discharge_chain(T0 + 2 * DAY, 8, batch="B8")
    stamp = datetime.fromtimestamp((read_up_to - 500_000) / 1e6, tz=UTC)
    empty.insert("events", [*EVENT_COLUMNS, "inserted_at"], [[*e.row(), stamp] for e in late])
    batch = Batch()
    batch.add("events", EVENT_COLUMNS, [e.row() for e in late])
    service.on_batch(batch)  # not queued: still catching up
    assert service._pending == 0

    drain(service, LATER)
    assert ("V8", "complete") in visits(empty)
    assert len(visits(empty)) == 4


def test_the_thread_catches_up_on_its_own(empty: Store) -> None:
    """The running thread steps through a catch-up without waiting ``interval``."""
    registry = CollectorRegistry()
    service = CorrelatorService(
        empty, CONFIG, registry, interval=30.0, max_pending=10, batch_max=PAGE
    )
    service.start()
    try:
        assert service.ready.wait(30)
        for n in range(1, 5):
            deliver(empty, service, discharge_chain(T0 + n * 60 * 10**9, n, batch=f"B{n}"))
        expected = [(f"V{n}", "complete") for n in range(1, 5)]
        assert service.wait_caught_up(20)
        assert service._cursor is None and not service._closing
        assert visits(empty) == expected
    finally:
        service.stop()
