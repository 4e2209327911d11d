"""The spool directory: segment files appended with group commit, a load checkpoint, a bound.

``append`` queues a record and returns a future; one thread writes everything
queued since its last sync with one ``write`` and one ``fdatasync`` (group
commit: concurrent senders share a sync, and the group grows by itself while a
sync is running), then resolves the futures, so a sender is acknowledged only
once its record is on disk. The active segment is rolled over past
``segment_bytes``; a new segment file is synced together with its directory.

The loader reads durable records from the checkpoint on and moves the checkpoint
(written atomically: temporary file, fsync, rename, directory fsync) after it
has loaded them; segments wholly before the checkpoint are deleted. Unloaded
records are bounded by ``max_bytes``: past it ``append`` raises ``Overloaded``
(or ``StoreUnavailable`` when loading is failing), never queueing more.

On open, the directory is locked for this process, segments before the
checkpoint are deleted and the rest scanned: a torn final record (see
``segment``) is logged, counted and skipped, every record before it is kept.
Appends always go to a new segment, so a recovered segment is never written again.

A record may carry a memo (the writer's decoded batch): once the record is synced
the memo is kept beside its position, up to ``memo_rows`` rows in all, and the
loader takes it instead of decoding the record it reads back. Only this process's
own recent records have one; a recovered or a memo-less record is decoded from disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from stitchboard.errors import ConfigError, Overloaded, StoreUnavailable
from stitchboard.spool.segment import (
    MAGIC,
    Position,
    Record,
    Torn,
    encode,
    read_records,
    scan,
    segment_ids,
    segment_name,
)

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.json"
LOCK = "LOCK"


@dataclass
class Tally:
    """Records, rows and bytes: appended (recovered ones included) or loaded."""

    records: int = 0
    rows: int = 0
    bytes: int = 0

    def add(self, records: int, rows: int, size: int) -> None:
        self.records += records
        self.rows += rows
        self.bytes += size


@dataclass(frozen=True)
class JournalStats:
    unloaded_records: int
    unloaded_rows: int
    unloaded_bytes: int
    disk_bytes: int
    segments: int
    syncs: int
    synced_records: int
    torn_records: int
    refused: int


def sum_stats(parts: list[JournalStats]) -> JournalStats:
    """Several spool directories' figures as one."""
    return JournalStats(*(sum(values) for values in zip(*(astuple(p) for p in parts), strict=True)))


@dataclass(frozen=True)
class SpoolState:
    """Where a journal's durable records are, for a loader in another process."""

    checkpoint: Position
    active: int  # the segment being appended to
    durable: int  # the end of its synced records
    ends: dict[int, int]  # sealed segments (from the checkpoint's on) -> end of valid records
    appended: tuple[int, int, int]  # records, rows, bytes (recovered ones included)
    syncs: int
    synced_records: int
    torn_records: int
    refused: int


class Segments:
    """The read side of a spool directory: where each segment's durable records end,
    the load checkpoint and the tallies; ``read`` and ``commit`` for the loader.

    ``Journal`` is the side that appends (in this process); ``FollowedSpool``
    (``stitchboard.spool.follower``) follows a directory another process appends to.
    """

    def __init__(self, directory: Path):
        self.directory = directory.resolve()
        self._lock = threading.Lock()
        self._ends: dict[int, int] = {}  # sealed segment -> end of its valid records
        self._sizes: dict[int, int] = {}  # segment -> bytes on disk
        self._active = 1  # the segment being appended to
        self._durable = len(MAGIC)  # end of its synced records
        self.appended = Tally()
        self.loaded = Tally()
        self.syncs = 0
        self.synced_records = 0
        self.torn_records = 0
        self.refused = 0
        self.load_error: str | None = None  # set by the loader while the store refuses
        self.checkpoint = Position(1, len(MAGIC))

    # -- loading ------------------------------------------------------------------------------

    def _readable(self, start: Position) -> bool:
        if start.segment != self._active:
            return True
        return start.offset < self._durable

    def read(self, start: Position, max_rows: int) -> tuple[list[Record], Position]:
        """Durable records from ``start`` (``max_rows`` rows, at least one), the next position."""
        with self._lock:
            active, durable, ends = self._active, self._durable, dict(self._ends)
        records: list[Record] = []
        rows = 0
        position = start
        while True:
            segment = position.segment
            stop = durable if segment == active else ends.get(segment)
            if stop is not None and position.offset < stop:
                path = self.directory / segment_name(segment)
                with path.open("rb") as stream:
                    found, torn = read_records(
                        stream, segment, position.offset, stop, max(max_rows - rows, 1)
                    )
                if torn is not None:  # changed under us: end the segment there
                    log.error("spool segment %s: bad record at byte %d", path.name, torn.offset)
                    with self._lock:
                        self._ends[segment] = torn.offset
                    stop = torn.offset
                if found:
                    records.extend(found)
                    rows += sum(r.rows for r in found)
                    position = Position(segment, found[-1].end)
                if rows >= max_rows:
                    break
                if stop is not None and position.offset < stop:
                    continue
            if segment == active:
                break
            later = [s for s in (*ends, active) if s > segment]
            position = Position(min(later), len(MAGIC))
        return records, position

    def commit(self, position: Position, records: list[Record]) -> None:
        """Mark everything before ``position`` loaded; delete segments wholly before it."""
        _write_checkpoint(self.directory, position)
        rows, size = sum(r.rows for r in records), sum(r.size for r in records)
        with self._lock:
            self.checkpoint = position
            self.loaded.add(len(records), rows, size)
            self._forget(records)
            done = [s for s in self._ends if s < position.segment]
            for segment in done:
                del self._ends[segment]
                self._sizes.pop(segment, None)
        for segment in done:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / segment_name(segment)).unlink()

    def readable(self, start: Position) -> bool:
        """Whether a durable record lies at or after ``start``."""
        with self._lock:
            return self._readable(start)

    def take_memo(self, position: Position) -> Any:
        """The decoded batch kept for the record at ``position`` (None: decode it)."""
        return None

    def _forget(self, records: list[Record]) -> None:
        """Loaded records (under the lock): drop what is kept for them."""

    @property
    def caught_up(self) -> bool:
        with self._lock:
            return self.appended.records == self.loaded.records

    def stats(self) -> JournalStats:
        with self._lock:
            return JournalStats(
                unloaded_records=self.appended.records - self.loaded.records,
                unloaded_rows=self.appended.rows - self.loaded.rows,
                unloaded_bytes=self.appended.bytes - self.loaded.bytes,
                disk_bytes=sum(self._sizes.values()),
                segments=len(self._sizes),
                syncs=self.syncs,
                synced_records=self.synced_records,
                torn_records=self.torn_records,
                refused=self.refused,
            )


class Journal(Segments):
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        retry_after: int = 1,
        clock: Callable[[], int] = time.time_ns,
        on_sync: Callable[[int, float], None] | None = None,
        memo_rows: int = 50_000,
    ):
        super().__init__(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.retry_after = retry_after
        self.clock = clock
        self.on_sync = on_sync  # (records in the group, seconds of write + fdatasync)
        # Called on the sync thread once a group's futures are resolved, synced or failed.
        self.on_group: Callable[[], None] | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.directory)
        self._pending_cv = threading.Condition(self._lock)
        self._pending: list[tuple[bytes, int, Future[None], Any]] = []
        # Synced records' memos by position, while they hold at most ``memo_rows`` rows.
        self.memo_rows = memo_rows
        self._memos: dict[Position, tuple[Any, int]] = {}
        self._memo_total = 0
        self._pending_bytes = 0
        self._sealed = False
        self.checkpoint = self._recover()
        self._active = max([*self._ends, self.checkpoint.segment - 1]) + 1
        self._fd = _create_segment(self.directory, self._active)
        self._durable = len(MAGIC)
        self._sizes[self._active] = len(MAGIC)
        if not self.appended.records and self._ends:
            # Nothing to load: forget the old segments rather than keep empty ones around.
            self.commit(Position(self._active, len(MAGIC)), [])
        self._thread = threading.Thread(target=self._sync_loop, name="spool-sync", daemon=True)
        self._thread.start()

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> Position:
        ids = segment_ids(self.directory)
        checkpoint = _read_checkpoint(self.directory)
        if checkpoint is None:
            checkpoint = Position(ids[0] if ids else 1, len(MAGIC))
        for segment in ids:
            path = self.directory / segment_name(segment)
            if segment < checkpoint.segment:
                path.unlink()
                continue
            size = path.stat().st_size
            self._sizes[segment] = size
            if size < len(MAGIC) or path.read_bytes()[: len(MAGIC)] != MAGIC:
                # Created just before a crash (its header never synced): nothing in it.
                log.warning("spool segment %s has no valid header; skipping it", path.name)
                self._ends[segment] = len(MAGIC)
                continue
            start = checkpoint.offset if segment == checkpoint.segment else len(MAGIC)
            end = start
            for item in scan(path, segment, start):
                if isinstance(item, Torn):
                    self.torn_records += 1
                    log.warning(
                        "spool segment %s: torn record at byte %d (%s), %d bytes skipped;"
                        " the records before it are kept",
                        path.name,
                        item.offset,
                        item.reason,
                        size - item.offset,
                    )
                    break
                self.appended.add(1, item.rows, item.size)
                end = item.end
            self._ends[segment] = end
        if self.appended.records:
            log.info(
                "spool %s: %d records (%d rows) not loaded yet; loading them",
                self.directory,
                self.appended.records,
                self.appended.rows,
            )
        return checkpoint

    # -- appending ----------------------------------------------------------------------------

    def append(self, payload: bytes, rows: int, memo: Any = None) -> Future[None]:
        """Queue a record; the future resolves once it is synced to disk. ``memo``
        (what ``payload`` decodes to) is handed to the loader with the record."""
        record = encode(payload, self.clock(), rows)
        future: Future[None] = Future()
        with self._lock:
            if self._sealed:
                raise StoreUnavailable("the server is shutting down")
            unloaded = self.appended.bytes - self.loaded.bytes + self._pending_bytes
            # One record larger than the whole bound is still taken into an empty spool.
            if unloaded and unloaded + len(record) > self.max_bytes:
                self.refused += 1
                if self.load_error is not None:
                    raise StoreUnavailable(
                        f"spool full ({unloaded} bytes not loaded) while the store fails:"
                        f" {self.load_error}"
                    )
                raise Overloaded(
                    f"spool full ({unloaded} bytes not loaded into the store yet)",
                    self.retry_after,
                )
            self._pending.append((record, rows, future, memo))
            self._pending_bytes += len(record)
            self._pending_cv.notify()
        return future

    def _sync_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._sealed:
                    self._pending_cv.wait()
                if not self._pending:
                    return
                group, self._pending = self._pending, []
            data = b"".join(record for record, _, _, _ in group)
            started = time.perf_counter()
            try:
                _write_all(self._fd, data)
                os.fdatasync(self._fd)
            except OSError as exc:
                # Nothing of this group is acknowledged. After a failed fsync the file's
                # state past the last good sync is unknown (the kernel may have dropped
                # the dirty pages), so the segment ends there and a new one starts.
                log.error("spool write failed: %s", exc)
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._durable)
                with self._lock:
                    self._pending_bytes -= len(data)
                error = StoreUnavailable(f"spool write failed: {exc}")
                for _, _, future, _ in group:
                    future.set_exception(error)
                if self.on_group is not None:
                    self.on_group()
                try:
                    self._roll()
                except OSError as again:
                    log.error("cannot start a new spool segment: %s", again)
                continue
            elapsed = time.perf_counter() - started
            with self._lock:
                self._keep_memos(group)
                self._durable += len(data)
                self._sizes[self._active] = self._durable
                self._pending_bytes -= len(data)
                self.appended.add(len(group), sum(rows for _, rows, _, _ in group), len(data))
                self.syncs += 1
                self.synced_records += len(group)
            for _, _, future, _ in group:
                future.set_result(None)
            if self.on_group is not None:
                self.on_group()
            if self.on_sync is not None:
                self.on_sync(len(group), elapsed)
            if self._durable >= self.segment_bytes:
                self._roll()

    def _keep_memos(self, group: list[tuple[bytes, int, Future[None], Any]]) -> None:
        """Memos of a group just synced, by position (under the lock)."""
        offset = self._durable
        for record, rows, _, memo in group:
            if memo is not None and self._memo_total + rows <= self.memo_rows:
                self._memos[Position(self._active, offset)] = (memo, rows)
                self._memo_total += rows
            offset += len(record)

    def _forget(self, records: list[Record]) -> None:
        for record in records:  # memos the loader did not take
            kept = self._memos.pop(record.position, None)
            if kept is not None:
                self._memo_total -= kept[1]

    def take_memo(self, position: Position) -> Any:
        """The memo of the record at ``position`` (None if it has none), given once."""
        with self._lock:
            kept = self._memos.pop(position, None)
            if kept is None:
                return None
            self._memo_total -= kept[1]
            return kept[0]

    def _roll(self) -> None:
        segment = self._active + 1
        fd = _create_segment(self.directory, segment)
        with self._lock:
            self._ends[self._active] = self._durable
            old, self._fd = self._fd, fd
            self._active = segment
            self._durable = len(MAGIC)
            self._sizes[segment] = len(MAGIC)
        os.close(old)

    # -- state --------------------------------------------------------------------------------

    @property
    def caught_up(self) -> bool:
        with self._lock:
            return self.appended.records == self.loaded.records and not self._pending

    # -- loaded by another process ------------------------------------------------------------

    def state(self) -> SpoolState:
        """Where the durable records end, for a loader following this spool from elsewhere."""
        with self._lock:
            return SpoolState(
                checkpoint=self.checkpoint,
                active=self._active,
                durable=self._durable,
                ends=dict(self._ends),
                appended=(self.appended.records, self.appended.rows, self.appended.bytes),
                syncs=self.syncs,
                synced_records=self.synced_records,
                torn_records=self.torn_records,
                refused=self.refused,
            )

    def loaded_elsewhere(self, position: Position, loaded: Tally) -> None:
        """A loader in another process has loaded everything before ``position`` (``loaded``
        in all since this journal opened) and written the checkpoint: free the bound."""
        with self._lock:
            self.checkpoint = position
            self.loaded = Tally(loaded.records, loaded.rows, loaded.bytes)
            for segment in [s for s in self._ends if s < position.segment]:
                del self._ends[segment]
                self._sizes.pop(segment, None)

    def seal(self) -> None:
        """Refuse new records and wait until every queued one is synced."""
        with self._lock:
            self._sealed = True
            self._pending_cv.notify_all()
        self._thread.join()

    def close(self) -> None:
        self.seal()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        os.close(self._lock_fd)


def _lock(directory: Path) -> int:
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            "spool_dir", [f"{directory} is in use by another Stitchboard process"]
        ) from None
    return fd


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_segment(directory: Path, segment: int) -> int:
    path = directory / segment_name(segment)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    _write_all(fd, MAGIC)
    os.fdatasync(fd)
    _sync_directory(directory)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_checkpoint(directory: Path) -> Position | None:
    path = directory / CHECKPOINT
    try:
        value = json.loads(path.read_text())
        return Position(int(value["segment"]), int(value["offset"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(str(path), [f"unreadable spool checkpoint: {exc}"]) from exc


def _write_checkpoint(directory: Path, position: Position) -> None:
    temporary = directory / (CHECKPOINT + ".tmp")
    with temporary.open("w") as out:
        json.dump({"segment": position.segment, "offset": position.offset}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, directory / CHECKPOINT)
    _sync_directory(directory)
