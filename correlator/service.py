"""The running correlator: a thread that stitches what the writer made durable.

Startup is a full pass over ``events`` (the in-memory stitching state is rebuilt,
every transaction rewritten, and rows the pass did not write are retired, so a
changed slas.yaml takes effect on restart). After that, each durable batch the
writer reports is queued by a listener and correlated within ``interval``
seconds; a periodic sweep recomputes transactions whose deadline just passed so
they turn ``overdue`` at the deadline, not when their next event arrives.

The queue is bounded: if the correlator falls behind by more than
``max_pending`` events, the listener drops batches and the thread re-reads
``events`` inserted since the first drop instead (idempotent: event ids dedupe).

No store error ends the thread: a failed pass or step is counted
(``stitchboard_correlator_failures``), logged once per streak of failures, and
retried after a wait that doubles up to ``retry_max`` seconds.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from correlator.engine import Correlator
from correlator.repository import TransactionSink, events_from_batch, read_events
from correlator.stitching import Changes
from correlator.unmatched import retire_older_than as retire_unmatched
from stitchboard.config.model import SlasConfig
from stitchboard.errors import StoreUnavailable
from stitchboard.events import Event
from stitchboard.store import Store
from stitchboard.writer import Batch

log = logging.getLogger(__name__)

_RESYNC_MARGIN_NS = 60 * 1_000_000_000  # inserted_at is stamped before a batch is visible


def retry_delay(failures: int, initial: float, maximum: float) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row: doubling from
    ``initial``, never more than ``maximum``."""
    return min(maximum, initial * 2 ** (failures - 1))


class CorrelatorMetrics:
    def __init__(self, registry: CollectorRegistry | None):
        r = registry or CollectorRegistry()
        self.events = Counter("stitchboard_correlated_events", "Events correlated", registry=r)
        self.writes = Counter(
            "stitchboard_transaction_writes",
            "Transaction rows written (upserts, retirements)",
            registry=r,
        )
        self.transactions = Gauge(
            "stitchboard_transactions", "Transactions held by the correlator", registry=r
        )
        self.pending = Gauge(
            "stitchboard_correlator_pending_events",
            "Durable events not yet correlated",
            registry=r,
        )
        self.freshness = Histogram(
            "stitchboard_correlation_delay_seconds",
            "Time from an event batch being durable to its transactions being written",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.dropped = Counter(
            "stitchboard_correlator_dropped_batches",
            "Batches dropped by a full correlator queue (re-read from events)",
            registry=r,
        )
        self.unmatched = Gauge(
            "stitchboard_unmatched_events",
            "Fan-in events (GL journals, cash postings) no transaction carries",
            ["workflow"],
            registry=r,
        )
        self.unmatched_oldest = Gauge(
            "stitchboard_unmatched_oldest_timestamp_seconds",
            "Event time of the oldest unmatched fan-in event (0: none); age = now - this",
            ["workflow"],
            registry=r,
        )
        self.failures = Counter(
            "stitchboard_correlator_failures",
            "Correlator passes and steps that failed (store errors included) and were retried",
            registry=r,
        )


class CorrelatorService:
    def __init__(
        self,
        store: Store,
        config: SlasConfig,
        registry: CollectorRegistry | None = None,
        interval: float = 0.25,
        sweep_interval: float = 1.0,
        max_pending: int = 500_000,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ):
        self.store = store
        self.correlator = Correlator(config)
        self._attributes = self.correlator.router.attribute_names
        self.sink = TransactionSink(store)
        self.metrics = CorrelatorMetrics(registry)
        self.interval = interval
        self.sweep_interval = sweep_interval
        self.max_pending = max_pending
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._failures = 0  # failed attempts in a row (a streak logs once)
        self._queue: deque[tuple[float, list[Event], list[int]]] = deque()
        self._pending = 0
        self._resync_since: int | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set once the startup pass is written
        self._new_config: SlasConfig | None = None  # a reloaded slas.yaml to apply
        self.loaded = False  # a full pass has run (the thread then skips its own)
        self.correlated_through = 0.0  # monotonic time of the newest batch already written
        # Seconds from each batch being durable to its transactions being written.
        self.recent_delays: deque[float] = deque(maxlen=100_000)

    # -- writer listener (runs on the writer thread: must be quick and never raise) ----

    def on_batch(self, batch: Batch) -> None:
        table = batch.tables.get("events")
        # Rows the engine decoded itself (raw OTLP) are not in the batch: the writer
        # reports their inserted_at stamps, and the correlator thread reads them back.
        stamps = list(getattr(batch, "stamps", {}).get("events", ()))
        if not table and not stamps:
            return
        events = events_from_batch(*table, self._attributes) if table else []
        with self._lock:
            if self._pending + len(events) > self.max_pending:
                if self._resync_since is None:
                    self._resync_since = time.time_ns() - _RESYNC_MARGIN_NS
                self.metrics.dropped.inc()
                return
            self._queue.append((time.monotonic(), events, stamps))
            self._pending += len(events)
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="correlator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set() and not self.loaded:
            try:
                self.full_pass()
            except Exception as exc:  # noqa: BLE001 - the thread outlives any store error
                self._failed("startup pass", exc)
            else:
                self._recovered()
        self.ready.set()
        next_sweep = time.monotonic() + self.sweep_interval
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._apply_config()
                self.step()
                if time.monotonic() >= next_sweep:
                    self._write_or_redo(self.correlator.sweep())
                    next_sweep = time.monotonic() + self.sweep_interval
            except Exception as exc:  # noqa: BLE001 - the loop must outlive one bad batch
                self._failed("step", exc)
            else:
                self._recovered()
        try:
            self.step()
        except Exception:  # noqa: BLE001 - best effort on shutdown
            log.exception("final correlator step failed")

    def reconfigure(self, config: SlasConfig) -> None:
        """A reloaded slas.yaml: the thread rebuilds the correlator and re-correlates
        every stored event under it before its next step."""
        with self._lock:
            self._new_config = config
        self._wake.set()

    def _apply_config(self) -> None:
        with self._lock:
            config, self._new_config = self._new_config, None
        if config is None:
            return
        self.correlator = Correlator(config)
        self._attributes = self.correlator.router.attribute_names
        try:
            self.full_pass()
        except BaseException:
            with self._lock:  # try again on the next loop
                self._new_config = self._new_config or config
            raise

    def _failed(self, what: str, exc: Exception) -> None:
        """Count a failure, log the first of a streak, and wait before the next try:
        the wait doubles with each failure in a row, up to ``retry_max`` seconds."""
        self.metrics.failures.inc()
        if not self._failures:
            if isinstance(exc, StoreUnavailable):
                log.warning("correlator %s failed, retrying with backoff: %s", what, exc)
            else:
                log.exception("correlator %s failed, retrying with backoff", what)
        self._failures += 1
        self._stop.wait(retry_delay(self._failures, self.retry_initial, self.retry_max))

    def _recovered(self) -> None:
        if self._failures:
            log.info("correlator recovered after %d failed attempts", self._failures)
            self._failures = 0

    # -- work -----------------------------------------------------------------------------

    def full_pass(self) -> int:
        """Correlate every stored event, write every transaction, retire the rest."""
        started = self.sink.version()
        count = 0
        # The state is millions of long-lived objects: without this, every
        # generation-2 collection during the pass walks all of them again.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for events in read_events(self.store, attributes=self._attributes):
                self.correlator.add(events)
                count += len(events)
            # Rewrite every transaction, not only the ones this pass changed: what the
            # pass does not write is retired below.
            self.correlator.touch_all()
            self._write(self.correlator.flush())
        finally:
            gc.freeze()
            if collecting:
                gc.enable()
        retired = self.sink.retire_older_than(started)
        retire_unmatched(self.store, started, self.sink.version())
        self.loaded = True
        self.metrics.events.inc(count)
        log.info(
            "correlator startup pass: %d events, %d transactions, %d stale rows retired",
            count,
            self.correlator.transaction_count,
            retired,
        )
        return count

    def step(self) -> None:
        with self._lock:
            batches = list(self._queue)
            self._queue.clear()
            self._pending = 0
            resync, self._resync_since = self._resync_since, None
        self.metrics.pending.set(0)
        count = 0
        stamps = [stamp for _, _, batch_stamps in batches for stamp in batch_stamps]
        for _, events, _ in batches:
            self.correlator.add(events)
            count += len(events)
        if stamps:
            try:
                for events in read_events(
                    self.store, inserted_stamps=stamps, attributes=self._attributes
                ):
                    self.correlator.add(events)
                    count += len(events)
            except BaseException:
                with self._lock:  # read them again next time
                    self._queue.appendleft((batches[0][0], [], stamps))
                raise
        if resync is not None:
            try:
                for events in read_events(
                    self.store, inserted_since=resync, attributes=self._attributes
                ):
                    self.correlator.add(events)
            except BaseException:
                with self._lock:
                    if self._resync_since is None or self._resync_since > resync:
                        self._resync_since = resync
                raise
        if not batches and resync is None:
            return
        self._write_or_redo(self.correlator.flush())
        done = time.monotonic()
        for received, _, _ in batches:
            self.metrics.freshness.observe(done - received)
            self.recent_delays.append(done - received)
        # What survives a step is state: keep it out of later full collections
        # (after a young-generation pass, so fresh cyclic garbage is not frozen).
        gc.collect(1)
        gc.freeze()
        if batches:
            self.correlated_through = batches[-1][0]
        self.metrics.events.inc(count)

    def _write_or_redo(self, changes: Changes) -> None:
        try:
            self._write(changes)
        except BaseException:
            # The state already holds the events; recompute these transactions next time.
            self.correlator.redo()
            raise

    def _write(self, changes: Changes) -> None:
        written = self.sink.write(changes)
        self.metrics.writes.inc(written)
        self.metrics.transactions.set(self.correlator.transaction_count)
        for workflow, (count, oldest) in self.correlator.unmatched().items():
            self.metrics.unmatched.labels(workflow).set(count)
            self.metrics.unmatched_oldest.labels(workflow).set(oldest / 1e9)
