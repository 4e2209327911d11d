"""The running correlator: a thread that stitches what the writer made durable.

The state lives in ClickHouse (``correlator.live``, docs/correlator.md). At startup
the correlator resumes from its durable watermark: it re-reads only the events
inserted since then, and a replayed event changes (and writes) nothing. When
slas.yaml changed since the stored transactions were computed (its signature
differs), or on a store that has none yet, startup is a full pass instead: the
SQL batch pass (``correlator.batch.rebuild``) over every event, every transaction
rewritten, the rows the pass did not write retired, and the lookup hops the live
path continues from written from the pass's own work tables
(``correlator.batch.handover``); Python holds one chunk of transactions at a time.

After that, each durable batch the writer reports is queued by a listener, and
the thread correlates what is queued every ``interval`` seconds (at once when
``batch_max`` events wait) against the stored state, through a
size-capped cache of recent components; a periodic SQL sweep recomputes open
transactions whose deadline just passed so they turn ``overdue`` at the
deadline, not when their next event arrives.

The queue is bounded: if the correlator falls behind by more than
``max_pending`` events, it catches up from the store instead. The listener stops
queueing, and the thread reads ``events`` in insert order from shortly before the
first batch it did not queue, one page of ``batch_max`` events per step, so a backlog
of any length costs one page of memory. At the first short page, queueing resumes
and the thread reads once more from ``watermark_margin`` before where it was, for
what was inserted while it switched (idempotent: event ids dedupe).

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
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from correlator.batch import RebuildReport, rebuild
from correlator.batch.handover import Handover
from correlator.batch.rebuild import collection_paused
from correlator.engine import Correlator
from correlator.index import (
    SIGNATURE,
    SWEPT,
    WATERMARK,
    StoreIndex,
    config_signature,
    read_state,
    write_state,
)
from correlator.live import LiveCorrelator, LookupHop, Update
from correlator.repository import (
    InsertCursor,
    TransactionSink,
    count_events_after,
    events_from_batch,
    read_events,
    read_events_inserted_since,
    read_events_page,
)
from correlator.stitching import Changes
from correlator.unmatched import UNMATCHED_EVENTS
from correlator.unmatched import retire_older_than as retire_unmatched
from stitchboard.config.model import SlasConfig
from stitchboard.errors import ConfigError, StoreUnavailable
from stitchboard.events import Event
from stitchboard.store import Store
from stitchboard.writer import Batch

log = logging.getLogger(__name__)

_RESYNC_MARGIN_NS = 60 * 1_000_000_000  # inserted_at is stamped before a batch is visible
_STATE_EVERY = 5.0  # seconds between writes of the watermark
_HOUSEKEEPING_EVERY = 30.0  # seconds between unmatched gauges and key-row pruning
_GAUGES_EVERY = 1.0  # at most this often, unmatched gauges after fan-in states changed


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
            "stitchboard_transactions", "Transactions held in the correlator's cache", registry=r
        )
        self.reloaded = Counter(
            "stitchboard_correlator_reloaded_transactions",
            "Transactions read back from the store (not in the cache)",
            registry=r,
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
            "Writer batches not queued while the correlator catches up (read from events)",
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
        self.busy = Counter(
            "stitchboard_correlator_busy_seconds",
            "Seconds the live correlator spent correlating, sweeping and writing: its rate in"
            " events per busy second is rate(correlated events) / rate(this), its load"
            " rate(this) alone (1 = never idle)",
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
        cache_hops: int = 200_000,
        watermark_margin: float = 60.0,
        batch_max: int = 50_000,
    ):
        self.store = store
        self.config = config
        self.cache_hops = cache_hops
        # The watermark trails the last drained batch by this much: an insert stamped
        # earlier may become visible (and be reported) later.
        self.margin_ns = int(watermark_margin * 1e9)
        self.correlator = Correlator(config)  # the in-memory core, for full passes
        self._attributes = self.correlator.router.attribute_names
        self.sink = TransactionSink(store)
        self.index = StoreIndex(store, self.sink, self._attributes)
        self.live = LiveCorrelator(config, self.index, cache_hops)
        self.metrics = CorrelatorMetrics(registry)
        self.interval = interval
        self.sweep_interval = sweep_interval
        # Events correlated and written at once: what is queued when the thread wakes, up
        # to this; a backlog drains in batches this big, with a due sweep between them.
        self.batch_max = batch_max
        self._next_sweep = 0.0  # monotonic time the next sweep is due
        self.max_pending = max_pending
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._failures = 0  # failed attempts in a row (a streak logs once)
        self._queue: deque[tuple[float, list[Event], list[int]]] = deque()
        self._pending = 0
        # Catching up (the queue overflowed): the thread reads ``events`` from this place
        # in insert order, a page per step; batches are not queued unless ``_closing``
        # (queueing again, reading what came in while it switched).
        self._cursor: InsertCursor | None = None
        self._closing = False
        self._behind = 0  # events in the store after the cursor, as last counted
        self._taken = 0  # events a step took from the queue and has not written yet
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set once startup (resume or full pass) is written
        self._new_config: SlasConfig | None = None  # a reloaded slas.yaml to apply
        self.loaded = False  # startup has run (the thread then skips its own)
        self.correlated_through = 0.0  # monotonic time of the newest batch already written
        # Seconds from each batch being durable to its transactions being written.
        self.recent_delays: deque[float] = deque(maxlen=100_000)
        self.watermark = 0  # events inserted before this (ns) are correlated
        self.swept = 0  # deadlines up to this (ns) are swept
        # ``swept`` as last stored: a restart resumes sweeping from there, so only the
        # deadlines up to it are pruned (the sweep might read a later one again).
        self.swept_saved = 0
        self._state_written = 0.0  # monotonic time of the last state write
        self._housekeeping = 0.0
        self._gauged = 0.0  # monotonic time of the last unmatched gauges
        self._gauges_stale = False  # fan-in states written since the last gauges
        self.rewritten = 0  # transaction rows written by the last startup
        self.report: RebuildReport | None = None  # the last full pass's (None: in memory)
        self._reloaded_seen = 0  # live.loaded_from_store already counted in the metric

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
            catching_up = self._cursor is not None and not self._closing
            if catching_up or self._pending + len(events) > self.max_pending:
                if not catching_up:
                    self._closing = False
                    if self._cursor is None:
                        self._cursor = InsertCursor(time.time_ns() - _RESYNC_MARGIN_NS)
                    log.warning(
                        "correlator %d events behind: catching up from the store", self._pending
                    )
                self.metrics.dropped.inc()
                self._wake.set()
                return
            self._queue.append((time.monotonic(), events, stamps))
            self._pending += len(events)
            full = self._pending >= self.batch_max
        # The thread steps every ``interval`` on its own: one step then carries every
        # batch loaded meanwhile (a step's index lookup and writes cost about the same for
        # ten events as for thousands). Only a full batch waiting wakes it early.
        if full:
            self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="correlator", daemon=True)
        self._thread.start()

    @property
    def caught_up(self) -> bool:
        """Nothing queued and no catch-up from the store under way."""
        with self._lock:
            return not self._queue and self._cursor is None and not self._taken

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` seconds) until the thread has correlated everything
        reported so far; False if it had not by then."""
        deadline = time.monotonic() + timeout
        while not self.caught_up:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set() and not self.loaded:
            try:
                self.start_up()
            except Exception as exc:  # noqa: BLE001 - the thread outlives any store error
                self._failed("startup pass", exc)
            else:
                self._recovered()
        self.ready.set()
        self._next_sweep = time.monotonic() + self.sweep_interval
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            started = time.perf_counter()
            try:
                self._apply_config()
                self.step()
                self.sweep_if_due()
                self._save_state()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive one bad batch
                self.metrics.busy.inc(time.perf_counter() - started)  # not the backoff
                self._failed("step", exc)
            else:
                self.metrics.busy.inc(time.perf_counter() - started)
                self._recovered()
        try:
            self.step()
            self._save_state(force=True)
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
        self._use(config)
        try:
            self.full_pass()
            self._release()
        except BaseException:
            with self._lock:  # try again on the next loop
                self._new_config = self._new_config or config
            raise

    def _use(self, config: SlasConfig) -> None:
        self.config = config
        self.correlator = Correlator(config)
        self._attributes = self.correlator.router.attribute_names
        self.index = StoreIndex(self.store, self.sink, self._attributes)
        self.live = LiveCorrelator(config, self.index, self.cache_hops)
        self._reloaded_seen = 0

    def _release(self) -> None:
        """The full pass is written: the store holds the state, drop the in-memory one.

        What a pass in memory froze goes back to the collector and is collected; what
        is alive then lives as long as the process (as the server freezes it once it
        has started) and is frozen again, out of every later full collection's walk."""
        gc.unfreeze()
        self.correlator = Correlator(self.config)
        gc.collect()
        gc.freeze()

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

    # -- startup ----------------------------------------------------------------------------

    def start_up(self, now: int | None = None) -> int:
        """Resume from the stored watermark, or run a full pass when slas.yaml changed
        (or nothing was stored yet). Returns how many events were read."""
        state = read_state(self.store)
        signature = state.get(SIGNATURE, (0, ""))[1]
        if signature == config_signature(self.config) and WATERMARK in state:
            return self.resume(state[WATERMARK][0], state.get(SWEPT, (0, ""))[0], now)
        count = self.full_pass(now)
        self._release()
        return count

    def resume(self, watermark: int, swept: int, now: int | None = None) -> int:
        """Correlate the events inserted since ``watermark`` against the stored state."""
        started = time.time_ns() - self.margin_ns
        self.swept = self.swept_saved = swept
        count = written = 0
        for events in read_events_inserted_since(self.store, watermark, self._attributes):
            with collection_paused():
                written += self._write_update(self.live.correlate(events, now))
            count += len(events)
        self.watermark = max(watermark, started)
        self.rewritten = written
        self._save_state(force=True)
        self.loaded = True
        self.metrics.events.inc(count)
        log.info(
            "correlator resumed: %d events inserted since the watermark, %d rows written",
            count,
            written,
        )
        return count

    def full_pass(self, now: int | None = None) -> int:
        """Recompute every transaction from the stored events with the SQL batch pass
        (``rebuild``: memory bounded by a chunk, not the history), write what the live
        path continues from (``lookup_hops``, the signature, watermark and swept), and
        retire the rest. Returns how many events were read.

        A slas.yaml regex the engine's RE2 refuses (Python's ``re`` accepts some) falls
        back to the in-memory core over every event, as before the batch pass existed."""
        wall = time.time_ns()
        now = wall if now is None else now
        handover = Handover(self.store, self.sink.version, now)
        try:
            report = rebuild(self.store, self.config, now, self.sink, after=handover)
        except ConfigError as exc:
            log.warning("correlator full pass in memory: the batch pass refuses %s", exc)
            self.report = None
            return self._full_pass_in_memory(wall, now)
        handover.finish()
        self.report = report
        self._handed_over(wall, now, report.transactions + report.retired)
        self.metrics.events.inc(report.events)
        self.metrics.writes.inc(report.transactions + report.retired)
        self._unmatched_gauges()
        log.info(
            "correlator full pass: %d events, %d transactions, %d stale rows retired",
            report.events,
            report.transactions,
            report.retired,
        )
        return report.events

    def _handed_over(self, wall: int, now: int, rewritten: int) -> None:
        """A full pass is written: store the state the live path resumes from. Events
        inserted since ``wall`` (less the margin) are correlated again by the live path
        (a replay changes nothing); deadlines up to ``now`` are reflected in the rows."""
        self.live.cache.clear()
        self.watermark = wall - self.margin_ns
        self.swept = now
        values: dict[str, int | str] = {
            SIGNATURE: config_signature(self.config),
            WATERMARK: self.watermark,
            SWEPT: self.swept,
        }
        write_state(self.store, self.sink.version(), **values)
        self.swept_saved = self.swept
        # The key rows (and pending deadlines) of the ids the pass retired go with the
        # next housekeeping, as those of ids the live path retires do.
        self.index.retired_by_pass(wall)
        self.rewritten = rewritten
        self.loaded = True

    def _full_pass_in_memory(self, wall: int, now: int) -> int:
        """The in-memory core over every event (holds the whole history while it runs)."""
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
            self._write(self.correlator.flush(now))
            self.index.truncate_lookup_hops()
            # No state rows from this pass: the live path reads its transactions from
            # ``transactions`` and their events by id the first time it touches them.
            self.index.truncate_state()
            self.index.write_all_lookup_hops(
                [
                    LookupHop(stitcher.workflow.name, *row)
                    for stitcher in self.correlator.stitchers
                    for row in stitcher.lookup_rows()
                ]
            )
        finally:
            gc.freeze()
            if collecting:
                gc.enable()
        retired = self.sink.retire_older_than(started)
        retire_unmatched(self.store, started, self.sink.version())
        self._handed_over(wall, now, self.correlator.transaction_count + retired)
        self.metrics.events.inc(count)
        log.info(
            "correlator full pass in memory: %d events, %d transactions, %d stale rows retired",
            count,
            self.correlator.transaction_count,
            retired,
        )
        return count

    # -- work -----------------------------------------------------------------------------

    def step(self, now: int | None = None) -> None:
        """Correlate and write what is queued, up to ``batch_max`` events (whole writer
        batches, at least one); the rest stays queued for the next step, which follows
        at once. While catching up, one page of events read from the store follows.
        Between parts, a due deadline sweep runs: a passed deadline never waits for a
        backlog to drain."""
        drained = time.time_ns() - self.margin_ns
        with self._lock:
            batches: list[tuple[float, list[Event], list[int]]] = []
            taken = 0
            while self._queue and (not batches or taken + len(self._queue[0][1]) <= self.batch_max):
                batch = self._queue.popleft()
                batches.append(batch)
                taken += len(batch[1])
            self._pending -= taken
            self._taken = taken
            left = bool(self._queue)
            if left:
                # The watermark stays behind the oldest batch still queued (it may hold
                # events inserted before the ones taken now).
                oldest = time.time_ns() - int((time.monotonic() - self._queue[0][0]) * 1e9)
                drained = min(drained, oldest - self.margin_ns)
            cursor, closing = self._cursor, self._closing
        self.metrics.pending.set(self._pending + self._behind)
        if not batches and cursor is None:
            return
        events = [event for _, batch_events, _ in batches for event in batch_events]
        stamps = [stamp for _, _, batch_stamps in batches for stamp in batch_stamps]
        count = 0
        try:
            for part in self._parts(events, stamps):
                if count:
                    self.sweep_if_due(now)
                with collection_paused():
                    self._write_update(self.live.correlate(part, now))
                count += len(part)
            if cursor is not None:
                if count:
                    self.sweep_if_due(now)
                page, after = read_events_page(
                    self.store, cursor, self._attributes, block=self.batch_max
                )
                with collection_paused():
                    self._write_update(self.live.correlate(page, now))
                count += len(page)
                if page and not closing:  # how long its newest event waited
                    self.metrics.freshness.observe(max(0.0, time.time() - after.at / 1e6))
                self._caught_up_to(after, full=len(page) == self.batch_max)
                # Pending includes the store's backlog: alerts hold while it drains.
                self._behind = count_events_after(self.store, self._cursor) if self._cursor else 0
                self.metrics.pending.set(self._pending + self._behind)
        except BaseException:
            with self._lock:  # correlate them again next time
                self._queue.extendleft(reversed(batches))
                self._pending += sum(len(b[1]) for b in batches)
                self._taken = 0
            raise
        done = time.monotonic()
        for received, _, _ in batches:
            self.metrics.freshness.observe(done - received)
            self.recent_delays.append(done - received)
        if batches:
            self.correlated_through = batches[-1][0]
        with self._lock:
            self._taken = 0
            if self._cursor is not None:  # nothing after it is correlated yet
                place = max(self._cursor.since, self._cursor.at * 1000)
                drained = min(drained, place - self.margin_ns)
            if left or self._cursor is not None:
                self._wake.set()  # more to do: no wait before the next step
        self.watermark = max(self.watermark, drained)
        self.metrics.events.inc(count)

    def _parts(self, events: list[Event], stamps: list[int]) -> Iterator[list[Event]]:
        """The queued events in parts of at most ``batch_max``, with those the engine
        decoded itself (read back by their ``inserted_at`` stamps)."""
        if stamps:
            for block in read_events(
                self.store, inserted_stamps=stamps, attributes=self._attributes
            ):
                events.extend(block)
        for i in range(0, len(events), self.batch_max):
            yield events[i : i + self.batch_max]

    def _caught_up_to(self, after: InsertCursor, full: bool) -> None:
        """Move the catch-up on past a page just correlated: a full page, on to the next;
        a short one while not queueing, queue again and re-read from ``margin`` before
        (a batch stamped earlier may have become visible later); a short one after
        that, done."""
        with self._lock:
            if full:
                self._cursor = after
            elif self._closing:
                self._cursor = None
                self._closing = False
                log.info("correlator caught up with the store")
            else:
                self._closing = True
                self._cursor = InsertCursor(max(after.since, after.at * 1000 - self.margin_ns))

    def sweep_if_due(self, now: int | None = None) -> int:
        """The sweep on its own schedule (every ``sweep_interval`` seconds), called
        between steps and between the parts of a long one."""
        if time.monotonic() < self._next_sweep:
            return 0
        written = self.sweep(now)
        self._next_sweep = time.monotonic() + self.sweep_interval
        return written

    def sweep(self, now: int | None = None) -> int:
        """Recompute open transactions whose deadline passed since the last sweep."""
        now = time.time_ns() if now is None else now
        with collection_paused():
            written = self._write_update(self.live.sweep(self.swept, now))
        self.swept = max(self.swept, now)
        if time.monotonic() - self._housekeeping >= _HOUSEKEEPING_EVERY:
            self._housekeeping = time.monotonic()
            self.index.prune_keys()
            # Swept, and stored as swept: no sweep, now or after a restart, reads them.
            self.index.prune_deadlines(min(self.swept, self.swept_saved))
            self._unmatched_gauges()
        return written

    def _write_update(self, update: Update) -> int:
        written = self.index.write(update) if not update.empty else 0
        self.live.commit(update)
        self.metrics.writes.inc(written)
        self.metrics.transactions.set(len(self.live.cache))
        self.metrics.reloaded.inc(self.live.loaded_from_store - self._reloaded_seen)
        self._reloaded_seen = self.live.loaded_from_store
        if update.changes.fan_in:  # a journal came or found its carrier: show it soon
            self._gauges_stale = True
        self._stale_gauges()
        return written

    def _stale_gauges(self) -> None:
        if self._gauges_stale and time.monotonic() - self._gauged >= _GAUGES_EVERY:
            self._unmatched_gauges()

    def _save_state(self, force: bool = False) -> None:
        if not self.loaded or not self.watermark:
            return
        if not force and time.monotonic() - self._state_written < _STATE_EVERY:
            return
        swept = self.swept
        write_state(self.store, self.sink.version(), **{WATERMARK: self.watermark, SWEPT: swept})
        self.swept_saved = swept
        self._state_written = time.monotonic()

    def _unmatched_gauges(self) -> None:
        """Unmatched fan-in events per workflow, as stored. A read of every fan-in
        state: after the write that changed them, at most once per ``_GAUGES_EVERY``
        seconds (not once per batch), so a busy correlator does not spend its time here."""
        self._gauged = time.monotonic()
        self._gauges_stale = False
        table = self.store.table(UNMATCHED_EVENTS.name)
        rows = self.store.rows(
            f"SELECT workflow, count(), min(toUnixTimestamp64Nano(event_time)) FROM {table}"
            " FINAL WHERE matched = 0 GROUP BY workflow"
        )
        counts = {w: (n, t) for w, n, t in rows}
        for workflow in self.config.workflows:
            count, oldest = counts.get(workflow.name, (0, 0))
            self.metrics.unmatched.labels(workflow.name).set(count)
            self.metrics.unmatched_oldest.labels(workflow.name).set(oldest / 1e9)

    def _write(self, changes: Changes) -> None:
        """Write what the in-memory core computed (the full pass)."""
        written = self.sink.write(changes)
        self.metrics.writes.inc(written)
        for workflow, (count, oldest) in self.correlator.unmatched().items():
            self.metrics.unmatched.labels(workflow).set(count)
            self.metrics.unmatched_oldest.labels(workflow).set(oldest / 1e9)
