"""The ingest spool: durable before the future resolves, group commit, bound, crash recovery."""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from stitchboard.errors import ConfigError, Overloaded, StoreUnavailable
from stitchboard.spool import Journal, Position, SpooledWriter
from stitchboard.spool.codec import decode_batch, encode_batch
from stitchboard.spool.journal import CHECKPOINT
from stitchboard.spool.segment import FRAME, MAGIC, segment_ids, segment_name
from stitchboard.store import MemorySink
from stitchboard.writer import Batch

COLUMNS = ("event_id", "amount", "keys", "payload")


def batch(first: int, n: int = 1) -> Batch:
    b = Batch()
    rows = [
        (f"e{i}", Decimal("12.34"), {"visit": f"V{i}"}, b"\x00raw") for i in range(first, first + n)
    ]
    b.add("events", COLUMNS, rows)
    return b


def ids(sink: MemorySink) -> list[str]:
    return [str(row["event_id"]) for row in sink.tables.get("events", [])]


def writer(path: Path, sink: MemorySink, **journal: int) -> SpooledWriter:
    return SpooledWriter(sink, Journal(path, **journal), linger=0.0, backoff=(0.02, 0.05))


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_batch_round_trips_through_the_codec_with_its_value_types():
    b = batch(0, 2)
    b.add_raw("otlp", b"\x0a\x01", 3)
    back = decode_batch(encode_batch(b))
    assert back.tables == {"events": (COLUMNS, b.tables["events"][1])}
    assert back.raw == {"otlp": [(b"\x0a\x01", 3)]}
    assert back.rows == 5


def test_acknowledged_batches_are_on_disk_before_loading_and_load_exactly(tmp_path):
    sink = MemorySink()
    w = writer(tmp_path, sink)
    for i in range(5):
        w.write_sync(batch(i * 2, 2), timeout=5)
    # Not loaded yet (the loader is not started), but durable: a new process finds them.
    assert sink.tables == {}
    assert w.journal.stats().unloaded_records == 5
    assert w.pending_rows == 10
    w.close()
    again = writer(tmp_path, sink)
    assert again.journal.stats().unloaded_rows == 10
    again.start()
    wait_for(lambda: again.journal.caught_up)
    assert ids(sink) == [f"e{i}" for i in range(10)]
    assert sink.tables["events"][0]["amount"] == Decimal("12.34")
    again.close()


def test_concurrent_senders_share_syncs(tmp_path):
    sink = MemorySink()
    w = writer(tmp_path, sink)
    w.start()
    futures = [w.submit(batch(i)) for i in range(200)]
    for f in futures:
        f.result(10)
    stats = w.journal.stats()
    assert stats.synced_records == 200
    assert stats.syncs < 200  # queued records are synced together
    wait_for(lambda: w.journal.caught_up)
    assert sorted(ids(sink)) == sorted(f"e{i}" for i in range(200))
    w.close()


def test_the_loader_takes_this_process_s_own_batches_up_to_the_memo_bound(tmp_path, monkeypatch):
    import stitchboard.spool.loader as loader

    decoded: list[int] = []

    def counting(payload: bytes) -> Batch:
        decoded.append(len(payload))
        return decode_batch(payload)

    monkeypatch.setattr(loader, "decode_batch", counting)
    sink = MemorySink()
    # Memos for at most 4 rows: of batches of 2, 1, 1 and 2 rows the first three are kept
    # (4 rows), the fourth would pass the bound.
    w = writer(tmp_path, sink, memo_rows=4)
    for first, n in ((0, 2), (2, 1), (3, 1), (4, 2)):
        w.write_sync(batch(first, n), timeout=5)
    w.start()
    wait_for(lambda: w.journal.caught_up)
    assert ids(sink) == [f"e{i}" for i in range(6)]
    assert len(decoded) == 1  # only the fourth batch was read back from its bytes
    assert w.journal.take_memo(Position(1, len(MAGIC))) is None  # each memo is given once
    w.close()
    # A new process has no memos: every recovered record is decoded from disk.
    decoded.clear()
    again = writer(tmp_path, MemorySink())
    again.write_sync(batch(9), timeout=5)
    again.close()
    third = writer(tmp_path, sink := MemorySink())
    third.start()
    wait_for(lambda: third.journal.caught_up)
    assert ids(sink) == ["e9"] and len(decoded) == 1
    third.close()


def test_listeners_get_each_loaded_batch(tmp_path):
    sink = MemorySink()
    w = writer(tmp_path, sink)
    seen: list[int] = []
    w.add_listener(lambda b: seen.append(b.rows))
    for i in range(3):
        w.write_sync(batch(i), timeout=5)
    w.start()
    wait_for(lambda: w.journal.caught_up)
    assert sum(seen) == 3
    w.close()


def test_a_full_spool_refuses_and_recovers_once_loaded(tmp_path):
    sink = MemorySink()
    one = len(encode_batch(batch(0))) + FRAME.size
    w = writer(tmp_path, sink, max_bytes=3 * one)
    for i in range(3):
        w.write_sync(batch(i), timeout=5)
    with pytest.raises(Overloaded):
        w.submit(batch(3))
    assert w.spool_metrics.refused._value.get() == 1
    w.start()
    wait_for(lambda: w.journal.caught_up)
    w.write_sync(batch(3), timeout=5)
    wait_for(lambda: w.journal.caught_up)
    assert ids(sink) == ["e0", "e1", "e2", "e3"]
    w.close()


def test_store_outage_acknowledges_into_the_spool_until_full_then_loads_everything(tmp_path):
    sink = MemorySink()
    sink.down = True
    one = len(encode_batch(batch(0))) + FRAME.size
    w = writer(tmp_path, sink, max_bytes=10 * one)
    w.start()
    for i in range(10):
        w.write_sync(batch(i), timeout=5)  # acknowledged while the store is down
    wait_for(lambda: w.journal.load_error is not None)
    with pytest.raises(StoreUnavailable, match="spool full"):
        w.submit(batch(10))
    health = w.health()
    assert health["unloaded_records"] == 10 and health["load_error"]
    sink.down = False
    wait_for(lambda: w.journal.caught_up)
    assert ids(sink) == [f"e{i}" for i in range(10)]
    assert w.journal.load_error is None
    w.close()


def test_segments_roll_over_and_loaded_ones_are_deleted(tmp_path):
    sink = MemorySink()
    w = writer(tmp_path, sink, segment_bytes=400)
    for i in range(20):
        w.write_sync(batch(i), timeout=5)
    assert len(segment_ids(tmp_path)) > 3
    w.start()
    wait_for(lambda: w.journal.caught_up)
    w.close()
    assert ids(sink) == [f"e{i}" for i in range(20)]
    assert len(segment_ids(tmp_path)) == 1  # only the last active one is left


def _spool_with(tmp_path: Path, n: int) -> Path:
    w = writer(tmp_path, MemorySink())
    for i in range(n):
        w.write_sync(batch(i), timeout=5)
    w.close()
    (segment,) = segment_ids(tmp_path)[:1]
    return tmp_path / segment_name(segment)


@pytest.mark.parametrize(
    "damage",
    [
        "cut inside the payload",
        "cut inside the header",
        "zero-filled tail",
        "checksum mismatch",
    ],
)
def test_a_torn_final_record_is_skipped_and_the_ones_before_it_load(tmp_path, damage):
    path = _spool_with(tmp_path, 4)
    data = bytearray(path.read_bytes())
    record = len(encode_batch(batch(0))) + FRAME.size
    last = len(MAGIC) + 3 * record
    assert len(data) == last + record
    if damage == "cut inside the payload":
        del data[last + FRAME.size + 5 :]
    elif damage == "cut inside the header":
        del data[last + 7 :]
    elif damage == "zero-filled tail":
        data[last:] = bytes(len(data) - last) + bytes(512)
    else:
        data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    sink = MemorySink()
    w = writer(tmp_path, sink)
    assert w.journal.stats().torn_records == 1
    assert w.journal.stats().unloaded_records == 3
    w.start()
    wait_for(lambda: w.journal.caught_up)
    assert ids(sink) == ["e0", "e1", "e2"]
    w.write_sync(batch(9), timeout=5)  # appends go on in a fresh segment
    wait_for(lambda: w.journal.caught_up)
    assert ids(sink) == ["e0", "e1", "e2", "e9"]
    w.close()


def test_a_crash_between_load_and_checkpoint_loads_again_with_the_same_ids(tmp_path):
    sink = MemorySink()
    w = writer(tmp_path, sink)
    for i in range(3):
        w.write_sync(batch(i), timeout=5)
    w.start()
    wait_for(lambda: w.journal.caught_up)
    w.close()
    # The checkpoint of that load never reached the disk:
    (tmp_path / CHECKPOINT).write_text(f'{{"segment": 1, "offset": {len(MAGIC)}}}')
    again = writer(tmp_path, sink)
    again.start()
    wait_for(lambda: again.journal.caught_up)
    again.close()
    # Loaded twice, with the same deterministic ids: the store's ReplacingMergeTree keeps one.
    assert ids(sink) == ["e0", "e1", "e2", "e0", "e1", "e2"]


def test_an_unreadable_record_becomes_a_dead_letter(tmp_path):
    sink = MemorySink()
    journal = Journal(tmp_path)
    journal.append(b"not a pickle", 1).result(5)
    w = SpooledWriter(sink, journal, linger=0.0)
    w.start()
    wait_for(lambda: w.journal.caught_up)
    (letter,) = sink.tables["dead_letters"]
    assert letter["source"] == "spool" and letter["payload"] == b"not a pickle"
    assert "cannot decode spool record" in str(letter["reason"])
    w.close()


def test_one_process_owns_a_spool_directory(tmp_path):
    journal = Journal(tmp_path)
    with pytest.raises(ConfigError, match="in use by another"):
        Journal(tmp_path)
    journal.close()
    Journal(tmp_path).close()


def test_close_loads_what_was_acknowledged(tmp_path):
    sink = MemorySink()
    w = writer(tmp_path, sink)
    w.start()
    futures = [w.submit(batch(i)) for i in range(50)]
    w.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert sorted(ids(sink)) == sorted(f"e{i}" for i in range(50))
    with pytest.raises(StoreUnavailable):
        w.submit(batch(99))


def test_oldest_unloaded_age_follows_the_clock(tmp_path):
    now = [1_000_000_000_000]
    journal = Journal(tmp_path, clock=lambda: now[0])
    w = SpooledWriter(MemorySink(), journal, linger=0.0, clock=lambda: now[0])
    w.write_sync(batch(0), timeout=5)
    assert w.oldest_unloaded_age() == 0.0  # the loader has not read it yet
    now[0] += 7_000_000_000
    w.start()
    wait_for(lambda: w.journal.caught_up)
    assert w.loader_lag == 7.0
    assert w.oldest_unloaded_age() == 0.0
    w.close()


def test_position_orders_by_segment_then_offset():
    assert Position(1, 900) < Position(2, 8)


def test_metrics_show_depth_syncs_and_loads(tmp_path):
    w = writer(tmp_path, MemorySink())
    for i in range(3):
        w.write_sync(batch(i), timeout=5)
    text = w.metrics.render().decode()
    assert "stitchboard_spool_unloaded_records 3.0" in text
    assert "stitchboard_spool_synced_records_total 3.0" in text
    w.start()
    wait_for(lambda: w.journal.caught_up)
    text = w.metrics.render().decode()
    assert "stitchboard_spool_unloaded_records 0.0" in text
    assert "stitchboard_spool_unloaded_bytes 0.0" in text
    assert "stitchboard_spool_loaded_records_total 3.0" in text
    assert "stitchboard_spool_oldest_unloaded_age_seconds 0.0" in text
    assert 'stitchboard_inserted_rows_total{table="events"} 3.0' in text
    w.close()


def test_a_failed_write_is_not_acknowledged_and_the_next_segment_takes_over(tmp_path):
    sink = MemorySink()
    w = writer(tmp_path, sink)
    w.write_sync(batch(0), timeout=5)
    # The active segment stops taking writes (its descriptor now reads only: EBADF).
    readonly = os.open(tmp_path / segment_name(segment_ids(tmp_path)[-1]), os.O_RDONLY)
    os.dup2(readonly, w.journal._fd)
    os.close(readonly)
    with pytest.raises(StoreUnavailable, match="spool write failed"):
        w.write_sync(batch(1), timeout=5)
    w.write_sync(batch(2), timeout=5)  # a fresh segment took over
    assert len(segment_ids(tmp_path)) == 2
    w.start()
    wait_for(lambda: w.journal.caught_up)
    assert ids(sink) == ["e0", "e2"]
    w.close()


def test_event_loop_senders_are_woken_once_per_group_commit(tmp_path):
    """200 senders on one loop: every one answered after its sync, with one cross-thread
    wake-up per group commit at most (not one per sender)."""
    sink = MemorySink()
    w = writer(tmp_path, sink)
    done: list[int] = []

    async def send(i: int) -> None:
        await w.write(batch(i))
        done.append(i)

    async def main() -> None:
        await asyncio.gather(*(send(i) for i in range(200)))

    asyncio.run(main())
    stats = w.journal.stats()
    assert sorted(done) == list(range(200))
    assert stats.synced_records == 200
    # A record synced before its sender was listed is answered on the loop itself, with
    # no cross-thread wake-up: on a slow machine that can be every one of them.
    assert w.waiters.wakeups <= stats.syncs < 200
    w.start()
    wait_for(lambda: w.journal.caught_up)
    assert sorted(ids(sink)) == sorted(f"e{i}" for i in range(200))
    w.close()


def test_event_loop_senders_get_a_failed_write_and_a_cancelled_one_is_skipped(tmp_path):
    sink = MemorySink()
    w = writer(tmp_path, sink)

    async def main() -> None:
        await w.write(batch(0))
        readonly = os.open(tmp_path / segment_name(segment_ids(tmp_path)[-1]), os.O_RDONLY)
        os.dup2(readonly, w.journal._fd)
        os.close(readonly)
        with pytest.raises(StoreUnavailable, match="spool write failed"):
            await w.write(batch(1))
        abandoned = asyncio.ensure_future(w.write(batch(2)))
        await asyncio.sleep(0)
        abandoned.cancel()
        await asyncio.gather(w.write(batch(3)), w.write(batch(4)))
        assert abandoned.cancelled()

    asyncio.run(main())
    w.start()
    wait_for(lambda: w.journal.caught_up)
    # Batch 2 was appended before its sender gave up: it is durable, so it loads.
    assert sorted(ids(sink)) == ["e0", "e2", "e3", "e4"]
    w.close()
