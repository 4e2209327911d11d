"""A spool directory that another process appends to, loaded by this one.

The MLLP and OTLP/HTTP receivers run in a process of their own
(``collector.receiver_process``): it appends to its own spool directory with
group commit, answers senders after ``fdatasync``, then reports where the durable
records end (``SpoolState``). The server's loader reads them from here as it
reads its own spool, moves the checkpoint, deletes loaded segments and tells the
receiver what it loaded, so the receiver's size bound counts only what is not in
the store yet.

When the receiver is restarted it recovers the directory from the checkpoint on
(torn final records are skipped, as at any start); what it reports then replaces
what the previous one reported, and the tallies start again from that checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from stitchboard.spool.journal import Segments, SpoolState, Tally
from stitchboard.spool.segment import Position, Record


class FollowedSpool(Segments):
    # Called when the loader's store error changes (the appending process answers with it).
    on_load_error: Callable[[str | None], None] | None = None
    _load_error: str | None = None

    @property
    def load_error(self) -> str | None:
        return self._load_error

    @load_error.setter
    def load_error(self, error: str | None) -> None:
        changed = error != self._load_error
        self._load_error = error
        if changed and self.on_load_error is not None:
            self.on_load_error(error)

    def __init__(self, directory: Path, max_bytes: int):
        super().__init__(directory)
        self.max_bytes = max_bytes
        # Called after each commit with the checkpoint and what was loaded in all.
        self.on_commit: Callable[[Position, Tally], None] | None = None
        # Called when more durable records were reported (wakes the loader).
        self.on_advance: Callable[[], None] | None = None
        # A commit (checkpoint written, tallies moved) and a restart do not interleave.
        self._commit_lock = threading.Lock()

    def follow(self, state: SpoolState, *, restarted: bool = False) -> None:
        """What the appending process reports; ``restarted``: a new one recovered the directory."""
        with self._commit_lock, self._lock:
            if restarted:
                self.checkpoint = state.checkpoint
                self.loaded = Tally()
            first = self.checkpoint.segment
            self._ends = {s: end for s, end in state.ends.items() if s >= first}
            self._sizes = {**self._ends, state.active: state.durable}
            self._active = state.active
            self._durable = state.durable
            self.appended = Tally(*state.appended)
            self.syncs = state.syncs
            self.synced_records = state.synced_records
            self.torn_records = state.torn_records
            self.refused = state.refused
        if self.on_advance is not None:
            self.on_advance()

    def commit(self, position: Position, records: list[Record]) -> None:
        with self._commit_lock:
            super().commit(position, records)
            with self._lock:
                loaded = Tally(self.loaded.records, self.loaded.rows, self.loaded.bytes)
            if self.on_commit is not None:
                self.on_commit(position, loaded)
