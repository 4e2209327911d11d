"""A spool directory appended to elsewhere (the receivers'), loaded by the server's
loader: what the appender reports is loaded once, the appender's bound is freed by what
the loader reports back, and a restarted appender's recovered records load exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stitchboard.errors import Overloaded, StoreUnavailable
from stitchboard.spool import Journal, SpooledWriter
from stitchboard.spool.codec import encode_batch
from stitchboard.spool.follower import FollowedSpool
from stitchboard.spool.journal import CHECKPOINT, Tally
from stitchboard.spool.segment import Position, segment_ids, segment_name
from stitchboard.store import MemorySink, OutageSink
from tests.unit.test_spool import batch, ids, wait_for, writer


class Appender:
    """The other process's side, here: a journal that reports after every sync and is told
    what was loaded (as ``collector.receiver_process`` does over its socket pair)."""

    def __init__(self, path: Path, follower: FollowedSpool, **journal: int):
        self.journal = Journal(path, **journal)
        self.follower = follower
        self.journal.on_group = lambda: follower.follow(self.journal.state())
        follower.on_commit = self.journal.loaded_elsewhere
        self.errors: list[str | None] = []
        follower.on_load_error = self._load_error
        follower.follow(self.journal.state(), restarted=True)

    def _load_error(self, error: str | None) -> None:
        self.errors.append(error)
        self.journal.load_error = error

    def append(self, first: int, n: int = 1) -> None:
        self.journal.append(encode_batch(batch(first, n)), n).result(5)


def following(tmp_path: Path) -> tuple[MemorySink, SpooledWriter, FollowedSpool, Appender]:
    """A writer loading its own spool and one an ``Appender`` writes, started."""
    sink = MemorySink()
    w = writer(tmp_path / "own", sink)
    follower = FollowedSpool(tmp_path / "other", 1 << 30)
    other = Appender(tmp_path / "other", follower)
    w.follow(follower)
    w.start()
    return sink, w, follower, other


def test_records_another_process_appends_load_once_beside_the_writer_s_own(tmp_path):
    sink, w, follower, other = following(tmp_path)
    w.write_sync(batch(0, 3), timeout=5)
    other.append(100, 4)
    other.append(104, 1)
    wait_for(lambda: len(ids(sink)) == 8 and w.caught_up)
    assert sorted(ids(sink)) == sorted([f"e{i}" for i in (0, 1, 2, 100, 101, 102, 103, 104)])
    health = w.health()
    assert health["unloaded_records"] == 0
    assert health["syncs"] == 3  # one of its own, two of the other's
    assert [part["synced_records"] for part in health["directories"]] == [1, 2]
    # The loader wrote the other directory's checkpoint and told the appender.
    assert other.journal.stats().unloaded_records == 0
    assert (tmp_path / "other" / CHECKPOINT).exists()
    w.close()
    other.journal.close()
    assert len(ids(sink)) == 8


def test_what_the_loader_reports_back_frees_the_appender_s_bound(tmp_path):
    sink = OutageSink(MemorySink())
    sink.down = True
    w = writer(tmp_path / "own", sink)  # type: ignore[arg-type]
    follower = FollowedSpool(tmp_path / "other", 600)
    other = Appender(tmp_path / "other", follower, max_bytes=600)
    w.follow(follower)
    w.start()
    other.append(0)
    wait_for(lambda: other.journal.load_error is not None)
    appended = 1
    with pytest.raises(StoreUnavailable, match="simulated outage"):
        for i in range(1, 100):
            other.append(i)
            appended += 1
    assert 0 < appended < 100
    assert other.errors[0] is not None and "simulated outage" in other.errors[0]
    sink.down = False
    wait_for(lambda: len(ids(sink.inner)) == appended)
    assert other.errors[-1] is None  # the store took writes again
    other.append(500)  # room again: the appender was told what was loaded
    wait_for(lambda: len(ids(sink.inner)) == appended + 1)
    wait_for(lambda: other.journal.stats().unloaded_bytes == 0)  # told after the load
    w.close()
    other.journal.close()


def test_a_restarted_appender_s_recovered_records_load_once_and_torn_ones_are_skipped(tmp_path):
    sink, w, follower, other = following(tmp_path)
    other.append(0, 2)
    wait_for(lambda: len(ids(sink)) == 2 and w.caught_up)
    # Synced but not reported before the appender died, then a torn tail.
    other.journal.on_group = None
    other.append(10, 3)
    active = max(segment_ids(tmp_path / "other"))
    other.journal.close()
    with open(tmp_path / "other" / segment_name(active), "ab") as segment:
        segment.write(b"\x40\x00\x00\x00torn")
        os.fsync(segment.fileno())
    restarted = Appender(tmp_path / "other", follower)
    assert restarted.journal.torn_records == 1
    wait_for(lambda: len(ids(sink)) == 5 and w.caught_up)
    assert sorted(ids(sink)) == ["e0", "e1", "e10", "e11", "e12"]
    assert follower.stats().unloaded_records == 0
    restarted.append(20)
    wait_for(lambda: len(ids(sink)) == 6)
    # Loaded segments of the previous appender are gone; the current one stays.
    wait_for(lambda: segment_ids(tmp_path / "other") == [restarted.journal.state().active])
    w.close()
    restarted.journal.close()


def test_the_appender_learns_the_checkpoint_and_forgets_loaded_segments(tmp_path):
    journal = Journal(tmp_path, segment_bytes=64)
    for i in range(3):
        journal.append(encode_batch(batch(i)), 1).result(5)
    wait_for(lambda: len(journal.state().ends) == 3)  # each record filled a segment
    state = journal.state()
    assert state.appended[0] == 3 and state.active == 4
    journal.loaded_elsewhere(Position(state.active, 8), Tally(3, 3, state.appended[2]))
    after = journal.state()
    assert after.ends == {} and after.checkpoint == Position(state.active, 8)
    assert journal.stats().unloaded_records == 0
    journal.close()


def test_a_full_appender_refuses_until_told_of_a_load(tmp_path):
    journal = Journal(tmp_path, max_bytes=300)
    journal.append(encode_batch(batch(0)), 1).result(5)
    with pytest.raises(Overloaded):
        for i in range(1, 20):
            journal.append(encode_batch(batch(i)), 1).result(5)
    state = journal.state()
    journal.loaded_elsewhere(Position(state.active, state.durable), Tally(*state.appended))
    journal.append(encode_batch(batch(50)), 1).result(5)
    journal.close()
