"""The ingest writer: bounded buffer, durable-before-ack, outage and recovery, listeners."""

from __future__ import annotations

import threading

import pytest

from stitchboard.errors import Overloaded, StoreUnavailable
from stitchboard.store import MemorySink
from stitchboard.writer import Batch, BatchWriter


def batch(n: int, table: str = "events") -> Batch:
    b = Batch()
    b.add(table, ("id",), [(i,) for i in range(n)])
    return b


class BlockingSink(MemorySink):
    """Holds every insert until released, to fill the buffer deterministically."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def insert(self, table, columns, rows):
        self.entered.set()
        self.release.wait(10)
        super().insert(table, columns, rows)


def test_rows_are_durable_when_the_future_resolves():
    sink = MemorySink()
    writer = BatchWriter(sink)
    writer.write_sync(batch(3), timeout=5)
    assert len(sink.tables["events"]) == 3
    writer.close()


def test_buffer_full_raises_overloaded_and_memory_stays_bounded():
    sink = BlockingSink()
    writer = BatchWriter(sink, max_rows=100, batch_max_rows=50)
    first = writer.submit(batch(60))
    second = writer.submit(batch(40))
    with pytest.raises(Overloaded):
        writer.submit(batch(1))
    assert writer.pending_rows == 100
    sink.release.set()
    first.result(5)
    second.result(5)
    assert writer.pending_rows == 0
    writer.submit(batch(1)).result(5)
    writer.close()


def test_outage_fails_the_batch_then_recovers():
    sink = MemorySink()
    writer = BatchWriter(sink)
    sink.down = True
    with pytest.raises(StoreUnavailable):
        writer.write_sync(batch(2), timeout=5)
    sink.down = False
    writer.write_sync(batch(2), timeout=5)
    assert len(sink.tables["events"]) == 2
    assert writer.metrics.store_errors._value.get() == 1
    writer.close()


def test_queued_batches_are_coalesced_into_one_insert_per_table():
    sink = BlockingSink()
    writer = BatchWriter(sink, batch_max_rows=1000)
    blocker = writer.submit(batch(1))
    assert sink.entered.wait(5)
    futures = [writer.submit(batch(10)) for _ in range(5)]
    sink.release.set()
    blocker.result(5)
    for f in futures:
        f.result(5)
    assert len(sink.tables["events"]) == 51
    assert sink.inserts == 2  # the blocker, then the five queued batches together
    writer.close()


def test_listeners_see_durable_batches_only():
    sink = MemorySink()
    writer = BatchWriter(sink)
    seen: list[int] = []
    writer.add_listener(lambda b: seen.append(b.rows))
    sink.down = True
    with pytest.raises(StoreUnavailable):
        writer.write_sync(batch(4), timeout=5)
    sink.down = False
    writer.write_sync(batch(2), timeout=5)
    assert seen == [2]
    writer.close()


def test_close_flushes_what_was_accepted():
    sink = BlockingSink()
    writer = BatchWriter(sink)
    futures = [writer.submit(batch(5)) for _ in range(3)]
    sink.release.set()
    writer.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(sink.tables["events"]) == 15
    with pytest.raises(StoreUnavailable):
        writer.submit(batch(1))
