"""A writer that acknowledges from the spool and loads into the store behind it.

``SpooledWriter`` has the face of ``BatchWriter`` (receivers cannot tell them
apart): ``submit`` appends the encoded batch to the journal and its future
resolves once the record is ``fdatasync``'d, so an OTLP 200 or an HL7 AA means
the data is on local disk, whatever the store is doing.

One loader thread reads durable records from the checkpoint on, up to
``batch_max_rows`` rows at a time (waiting ``linger`` seconds between loads so
inserts stay large), inserts them through the shared insert path (one insert
per table, raw OTLP decoded by the engine), notifies the listeners (the
correlator) and then moves the checkpoint. A crash between insert and
checkpoint loads those records again: every row has a deterministic id and
every table is a ReplacingMergeTree read with FINAL, so nothing is doubled.

While the store refuses writes the loader retries the same records with
backoff; ingest keeps acknowledging into the spool until it is full (then
``Overloaded``/``StoreUnavailable``: 429/503 and AR). A record whose checksum
holds but which cannot be decoded (written by an incompatible version) is
dead-lettered with its bytes, never dropped silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from stitchboard.errors import Overloaded, StoreUnavailable
from stitchboard.events import DEAD_LETTER_COLUMNS, DeadLetter
from stitchboard.metrics import LATENCY_BUCKETS, Metrics
from stitchboard.spool.codec import UnreadableRecord, decode_batch, encode_batch
from stitchboard.spool.follower import FollowedSpool
from stitchboard.spool.journal import Journal, JournalStats, Segments, sum_stats
from stitchboard.spool.segment import Position, Record
from stitchboard.spool.waiters import Waiters
from stitchboard.store.sink import Sink
from stitchboard.writer import Batch, Inserter, RawInserter, merge, notify

log = logging.getLogger(__name__)

UNREADABLE_CONTENT_TYPE = "application/vnd.stitchboard.spool-record"


class SpoolMetrics:
    def __init__(self, metrics: Metrics, writer: SpooledWriter):
        r = metrics.registry
        self.syncs = Counter("stitchboard_spool_syncs", "fdatasync calls of the spool", registry=r)
        self.synced_records = Counter(
            "stitchboard_spool_synced_records",
            "Records made durable by those syncs (records per sync = this / syncs)",
            registry=r,
        )
        self.sync_seconds = Histogram(
            "stitchboard_spool_sync_seconds",
            "Write plus fdatasync time per group commit",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.loaded_records = Counter(
            "stitchboard_spool_loaded_records", "Spool records loaded into the store", registry=r
        )
        self.load_errors = Counter(
            "stitchboard_spool_load_errors", "Failed loads (retried)", registry=r
        )
        self.refused = Counter(
            "stitchboard_spool_refused_batches", "Batches refused by a full spool", registry=r
        )
        self.torn = Counter(
            "stitchboard_spool_torn_records", "Torn records found after a crash", registry=r
        )
        self.load_delay = Histogram(
            "stitchboard_spool_load_delay_seconds",
            "From a record being durable in the spool to its rows being in the store",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        gauges: dict[str, tuple[str, Callable[[], float]]] = {
            "stitchboard_spool_unloaded_records": (
                "Records durable in the spool, not yet in the store",
                lambda: writer.stats().unloaded_records,
            ),
            "stitchboard_spool_unloaded_bytes": (
                "Bytes of those records (bounded by spool_max_bytes per spool directory)",
                lambda: writer.stats().unloaded_bytes,
            ),
            "stitchboard_spool_disk_bytes": (
                "Spool segment files on disk",
                lambda: writer.stats().disk_bytes,
            ),
            "stitchboard_spool_oldest_unloaded_age_seconds": (
                "Age of the oldest record not yet loaded (0 when caught up)",
                lambda: writer.oldest_unloaded_age(),
            ),
            "stitchboard_spool_loader_lag_seconds": (
                "Durable-to-loaded delay of the newest record of the last load",
                lambda: writer.loader_lag,
            ),
        }
        for name, (doc, read) in gauges.items():
            Gauge(name, doc, registry=r).set_function(read)


class SpooledWriter:
    def __init__(
        self,
        sink: Sink,
        journal: Journal,
        *,
        batch_max_rows: int = 100_000,
        metrics: Metrics | None = None,
        retry_after: int = 1,
        linger: float = 0.25,
        backoff: tuple[float, float] = (0.2, 5.0),
        clock: Callable[[], int] = time.time_ns,
    ):
        self.sink = sink
        self.journal = journal
        self.batch_max_rows = batch_max_rows
        self.metrics = metrics or Metrics()
        self.retry_after = retry_after
        self.linger = linger
        self.backoff = backoff
        self.clock = clock
        self._inserter = Inserter(sink, self.metrics)
        self._listeners: list[Callable[[Batch], None]] = []
        self._stop = threading.Event()  # closing: load what is durable, then stop
        self._abandon = threading.Event()  # stop now; what is left loads on the next start
        self._thread: threading.Thread | None = None
        self._oldest_ns: int | None = None
        self.loader_lag = 0.0
        self.spool_metrics = SpoolMetrics(self.metrics, self)
        self.spool_metrics.torn.inc(journal.torn_records)
        journal.on_sync = self.record_sync
        self.waiters = Waiters()
        journal.on_group = self._on_group
        # Spool directories other processes append to (the receivers'), loaded here too.
        self._followed: list[FollowedSpool] = []
        self._wake = threading.Event()  # more durable records in one of the spools

    def _on_group(self) -> None:
        self.waiters.synced()
        self._wake.set()

    def follow(self, spool: FollowedSpool) -> None:
        """Load ``spool`` (appended to by another process) along with this writer's own."""
        spool.on_advance = self._wake.set
        self._followed.append(spool)
        self._wake.set()

    def _spools(self) -> list[Segments]:
        return [self.journal, *self._followed]

    def stats(self) -> JournalStats:
        """This writer's spool and the followed ones, summed."""
        return sum_stats([spool.stats() for spool in self._spools()])

    def record_sync(self, records: int, seconds: float) -> None:
        """A group commit of ``records`` that took ``seconds`` (here or in a followed spool)."""
        self.spool_metrics.syncs.inc()
        self.spool_metrics.synced_records.inc(records)
        self.spool_metrics.sync_seconds.observe(seconds)

    # -- the writer's face ----------------------------------------------------------------

    def add_listener(self, listener: Callable[[Batch], None]) -> None:
        """Call ``listener(batch)`` on the loader thread after each load into the store."""
        self._listeners.append(listener)

    def register_raw(self, kind: str, inserter: RawInserter) -> None:
        self._inserter.raw[kind] = inserter

    def loads_raw(self, kind: str) -> bool:
        """Whether records of ``kind`` spooled as sent can be loaded (an inserter is registered)."""
        return kind in self._inserter.raw

    def start(self) -> None:
        """Start loading (once every raw inserter is registered: recovered records need them)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spool-loader", daemon=True)
            self._thread.start()

    def submit(self, batch: Batch) -> Future[None]:
        """Append a batch; the future resolves once it is synced. Raises Overloaded."""
        rows = batch.rows
        if rows == 0:
            future: Future[None] = Future()
            future.set_result(None)
            return future
        self._inserter.check(batch)
        try:
            return self.journal.append(encode_batch(batch), rows, memo=batch)
        except (Overloaded, StoreUnavailable):
            self.spool_metrics.refused.inc()
            raise

    async def write(self, batch: Batch) -> None:
        await self.waiters.wait(self.submit(batch))

    def write_sync(self, batch: Batch, timeout: float | None = None) -> None:
        self.submit(batch).result(timeout)

    @property
    def pending_rows(self) -> int:
        return self.stats().unloaded_rows

    @property
    def caught_up(self) -> bool:
        return all(spool.caught_up for spool in self._spools())

    def oldest_unloaded_age(self) -> float:
        oldest = self._oldest_ns
        if oldest is None or self.caught_up:
            return 0.0
        return max(0.0, (self.clock() - oldest) / 1e9)

    def health(self) -> dict[str, Any]:
        stats = self.stats()
        body: dict[str, Any] = {
            "directory": str(self.journal.directory),
            "unloaded_records": stats.unloaded_records,
            "unloaded_rows": stats.unloaded_rows,
            "unloaded_bytes": stats.unloaded_bytes,
            "max_bytes": self.journal.max_bytes,
            "disk_bytes": stats.disk_bytes,
            "segments": stats.segments,
            "oldest_unloaded_age_seconds": round(self.oldest_unloaded_age(), 3),
            "loader_lag_seconds": round(self.loader_lag, 3),
            "load_error": self.journal.load_error,
            "torn_records": stats.torn_records,
            "syncs": stats.syncs,
            "synced_records": stats.synced_records,
        }
        if self._followed:
            # Each directory's own figures; the ones above are their sums.
            body["directories"] = [_part(spool) for spool in self._spools()]
        return body

    # -- the loader thread ----------------------------------------------------------------

    def _run(self) -> None:
        positions: dict[int, Position] = {}  # by id() of each spool: where loading goes on
        while not self._abandon.is_set():
            spools = self._spools()
            for spool in spools:
                positions.setdefault(id(spool), spool.checkpoint)
            ready = [spool for spool in spools if spool.readable(positions[id(spool)])]
            if not ready:
                if self._stop.is_set():
                    return
                self._wake.clear()
                if not any(spool.readable(positions[id(spool)]) for spool in spools):
                    self._wake.wait(0.25)
                continue
            started = time.monotonic()
            taken: list[tuple[Segments, list[Record], Position]] = []
            budget = self.batch_max_rows
            for spool in ready:
                if budget <= 0:
                    break
                records, following = spool.read(positions[id(spool)], budget)
                budget -= sum(record.rows for record in records)
                taken.append((spool, records, following))
            read = [record for _, records, _ in taken for record in records]
            if read:
                self._oldest_ns = min(record.time_ns for record in read)
                merged = merge([self._decode(spool, records) for spool, records, _ in taken])
                if not self._load(merged):
                    return
                notify(self._listeners, merged)
            for spool, records, following in taken:
                # Nothing read: past a sealed segment with nothing left in it.
                if records or following != positions[id(spool)]:
                    spool.commit(following, records)
                positions[id(spool)] = following
            if not read:
                continue
            self._loaded(read)
            pause = self.linger - (time.monotonic() - started)
            if pause > 0 and not self._stop.is_set():
                self._abandon.wait(pause)

    def _decode(self, spool: Segments, records: list[Record]) -> Batch:
        batches = []
        for record in records:
            memo = spool.take_memo(record.position)
            if memo is not None:  # this process's own batch: what the payload decodes to
                batches.append(memo)
                continue
            try:
                batches.append(decode_batch(record.payload))
            except UnreadableRecord as exc:
                log.error("spool record at %s is unreadable: %s", record.position, exc)
                letter = DeadLetter(
                    source="spool",
                    content_type=UNREADABLE_CONTENT_TYPE,
                    payload=record.payload,
                    reason=str(exc),
                    received_time=record.time_ns,
                )
                lost = Batch()
                lost.add("dead_letters", DEAD_LETTER_COLUMNS, [letter.row()])
                batches.append(lost)
        return merge(batches)

    def _load(self, merged: Batch) -> bool:
        """Insert until it works; False when told to abandon (the records stay spooled)."""
        delay = self.backoff[0]
        while True:
            try:
                self._inserter.insert(merged)
            except Exception as exc:  # noqa: BLE001 - retried; the records are safe on disk
                self.metrics.store_errors.inc()
                self.spool_metrics.load_errors.inc()
                if self.journal.load_error is None:
                    log.warning("loading the spool into the store failed, retrying: %s", exc)
                self._set_load_error(str(exc) or type(exc).__name__)
                if self._abandon.wait(delay):
                    return False
                delay = min(delay * 2, self.backoff[1])
                continue
            if self.journal.load_error is not None:
                log.info("the store accepts writes again; loading the spool")
                self._set_load_error(None)
            return True

    def _set_load_error(self, error: str | None) -> None:
        for spool in self._spools():
            spool.load_error = error

    def _loaded(self, records: list[Record]) -> None:
        now = self.clock()
        newest = max(record.time_ns for record in records)
        self.loader_lag = max(0.0, (now - newest) / 1e9)
        self.spool_metrics.loaded_records.inc(len(records))
        oldest = min(record.time_ns for record in records)
        self.spool_metrics.load_delay.observe(max(0.0, (now - oldest) / 1e9))
        # The next record is no older than the last one loaded (exact after the next read).
        self._oldest_ns = None if self.caught_up else newest

    def close(self, timeout: float = 30.0) -> None:
        """Take no more, sync what was queued, load what is durable (within ``timeout``)."""
        self.journal.seal()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._abandon.set()
                self._thread.join(10)
        left = self.stats().unloaded_records
        if left:
            log.warning("%d spool records not loaded yet; they load on the next start", left)
        self.journal.close()


def open_spooled_writer(
    sink: Sink,
    directory: Path,
    *,
    max_bytes: int,
    segment_bytes: int,
    batch_max_rows: int,
    metrics: Metrics,
    retry_after: int,
) -> SpooledWriter:
    """Open (and recover) the spool in ``directory`` and a writer loading it into ``sink``."""
    journal = Journal(
        directory, max_bytes=max_bytes, segment_bytes=segment_bytes, retry_after=retry_after
    )
    return SpooledWriter(
        sink, journal, batch_max_rows=batch_max_rows, metrics=metrics, retry_after=retry_after
    )


def _part(spool: Segments) -> dict[str, Any]:
    stats = spool.stats()
    return {
        "directory": str(spool.directory),
        "unloaded_records": stats.unloaded_records,
        "unloaded_rows": stats.unloaded_rows,
        "unloaded_bytes": stats.unloaded_bytes,
        "disk_bytes": stats.disk_bytes,
        "segments": stats.segments,
        "torn_records": stats.torn_records,
        "syncs": stats.syncs,
        "synced_records": stats.synced_records,
    }
