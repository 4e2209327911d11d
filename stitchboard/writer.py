"""The ingest writer: a bounded buffer in front of ClickHouse, drained by one thread.

Every source (OTLP, MLLP, files, HTTP) hands an ``IngestWriter`` a ``Batch`` and
waits for it to be durable before it acknowledges. ``stitchboard serve`` uses
``stitchboard.spool.SpooledWriter`` (durable = synced to the local spool, loaded
behind it through the same ``Inserter``); ``BatchWriter`` here, used by the
command-line tools, makes a batch durable by inserting it. It coalesces
whatever is queued into one insert per table (ClickHouse wants few, large
inserts), and refuses new batches with ``Overloaded`` once ``max_rows`` are buffered or in
flight: memory stays bounded whatever the input rate. A failed insert fails
every batch in it with ``StoreUnavailable``; nothing was acknowledged, so the
senders retry, and deterministic ids plus ReplacingMergeTree make the retry safe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from stitchboard.errors import Overloaded, StoreUnavailable
from stitchboard.metrics import Metrics
from stitchboard.store.sink import Sink

log = logging.getLogger(__name__)

# Inserted in this order: raw tables first, derived and rejected rows after.
TABLE_ORDER = ("otel_traces", "otel_logs", "events", "dead_letters")


@dataclass(frozen=True)
class RawInserter:
    """Inserts payloads that the engine decodes itself (see ``BatchWriter.register_raw``).

    ``insert(sink, payloads, stamp)`` writes every row of ``payloads``; rows it
    puts in ``events`` carry ``inserted_at = stamp`` (microseconds), so listeners
    can read exactly those rows back.
    """

    insert: Callable[[Sink, list[bytes], int], None]
    tables: tuple[str, ...]


@dataclass
class Batch:
    """Rows for several tables that become durable together.

    ``raw`` holds payloads of a registered raw kind (with the number of records
    each holds, for the buffer bound); after a durable insert, ``stamps`` maps
    each table the raw inserters filled to the ``inserted_at`` stamps they used.
    """

    tables: dict[str, tuple[Sequence[str], list[Sequence[object]]]] = field(default_factory=dict)
    raw: dict[str, list[tuple[bytes, int]]] = field(default_factory=dict)
    stamps: dict[str, list[int]] = field(default_factory=dict)

    def add_raw(self, kind: str, payload: bytes, records: int) -> None:
        self.raw.setdefault(kind, []).append((payload, records))

    def add(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        if not rows:
            return
        if table in self.tables:
            self.tables[table][1].extend(rows)
        else:
            self.tables[table] = (columns, list(rows))

    @property
    def rows(self) -> int:
        tables = sum(len(rows) for _, rows in self.tables.values())
        return tables + sum(n for payloads in self.raw.values() for _, n in payloads)


def merge(batches: Iterable[Batch]) -> Batch:
    """One batch holding the rows and raw payloads of ``batches``, in order."""
    merged = Batch()
    for batch in batches:
        for table, (columns, rows) in batch.tables.items():
            merged.add(table, columns, rows)
        for kind, payloads in batch.raw.items():
            merged.raw.setdefault(kind, []).extend(payloads)
    return merged


class Inserter:
    """The insert path every writer shares: tables in ``TABLE_ORDER``, then raw payloads."""

    def __init__(self, sink: Sink, metrics: Metrics):
        self.sink = sink
        self.metrics = metrics
        self.raw: dict[str, RawInserter] = {}
        self._last_stamp = 0

    def check(self, batch: Batch) -> None:
        """Raise ValueError for a raw kind no inserter is registered for."""
        unknown = [kind for kind in batch.raw if kind not in self.raw]
        if unknown:
            raise ValueError(f"no raw inserter registered for {unknown[0]!r}")

    def insert(self, merged: Batch) -> None:
        """Insert every row of ``merged``; fills ``merged.stamps`` for its raw payloads."""
        self.check(merged)
        order = [t for t in TABLE_ORDER if t in merged.tables]
        order += [t for t in merged.tables if t not in TABLE_ORDER]
        for table in order:
            columns, rows = merged.tables[table]
            started = time.perf_counter()
            self.sink.insert(table, columns, rows)
            self.metrics.insert_latency.labels(table).observe(time.perf_counter() - started)
            self.metrics.inserted_rows.labels(table).inc(len(rows))
        for kind, payloads in merged.raw.items():
            inserter = self.raw[kind]
            self._last_stamp = max(self._last_stamp + 1, time.time_ns() // 1000)
            started = time.perf_counter()
            inserter.insert(self.sink, [payload for payload, _ in payloads], self._last_stamp)
            self.metrics.insert_latency.labels(kind).observe(time.perf_counter() - started)
            self.metrics.inserted_rows.labels(kind).inc(sum(n for _, n in payloads))
            for table in inserter.tables:
                merged.stamps.setdefault(table, []).append(self._last_stamp)


def notify(listeners: Iterable[Callable[[Batch], None]], merged: Batch) -> None:
    """Hand a durable batch to each listener; a failing listener is logged, never raised."""
    for listener in listeners:
        try:
            listener(merged)
        except Exception:  # noqa: BLE001 - rows are durable; a listener cannot undo that
            log.exception("writer listener failed")


class IngestWriter(Protocol):
    """What the receivers use: hand over a batch, wait until it is durable."""

    metrics: Metrics
    retry_after: int

    def submit(self, batch: Batch) -> Future[None]: ...

    async def write(self, batch: Batch) -> None: ...

    def write_sync(self, batch: Batch, timeout: float | None = None) -> None: ...

    def add_listener(self, listener: Callable[[Batch], None]) -> None: ...

    def register_raw(self, kind: str, inserter: RawInserter) -> None: ...

    @property
    def pending_rows(self) -> int: ...

    def start(self) -> None: ...

    def health(self) -> dict[str, object] | None: ...

    def close(self, timeout: float = 30.0) -> None: ...


class BatchWriter:
    def __init__(
        self,
        sink: Sink,
        *,
        max_rows: int = 400_000,
        batch_max_rows: int = 100_000,
        metrics: Metrics | None = None,
        retry_after: int = 1,
    ):
        self.sink = sink
        self.max_rows = max_rows
        self.batch_max_rows = batch_max_rows
        self.metrics = metrics or Metrics()
        self.retry_after = retry_after
        self._queue: deque[tuple[Batch, Future[None]]] = deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._listeners: list[Callable[[Batch], None]] = []
        self._inserter = Inserter(sink, self.metrics)
        self._thread = threading.Thread(target=self._run, name="stitchboard-writer", daemon=True)
        self._thread.start()

    def add_listener(self, listener: Callable[[Batch], None]) -> None:
        """Call ``listener(batch)`` on the writer thread after each durable insert.

        Listeners must be quick (hand the rows to a queue); an exception is logged
        and ignored, since the rows are already durable.
        """
        self._listeners.append(listener)

    def register_raw(self, kind: str, inserter: RawInserter) -> None:
        """Accept ``Batch.add_raw(kind, …)`` payloads, written by ``inserter``."""
        self._inserter.raw[kind] = inserter

    def start(self) -> None:
        """Nothing to do: the writer thread runs from construction."""

    def health(self) -> dict[str, object] | None:
        return None

    # -- producers ------------------------------------------------------------------

    def submit(self, batch: Batch) -> Future[None]:
        """Queue a batch; the future resolves when it is durable. Raises Overloaded."""
        future: Future[None] = Future()
        n = batch.rows
        if n == 0:
            future.set_result(None)
            return future
        self._inserter.check(batch)
        with self._cond:
            if self._closing:
                raise StoreUnavailable("the server is shutting down")
            # A batch larger than the whole buffer is still accepted when the buffer is empty.
            if self._pending_rows and self._pending_rows + n > self.max_rows:
                raise Overloaded(
                    f"ingest buffer full ({self._pending_rows} rows pending)", self.retry_after
                )
            self._pending_rows += n
            self.metrics.queue_rows.set(self._pending_rows)
            self._queue.append((batch, future))
            self._cond.notify()
        return future

    async def write(self, batch: Batch) -> None:
        await asyncio.wrap_future(self.submit(batch))

    def write_sync(self, batch: Batch, timeout: float | None = None) -> None:
        self.submit(batch).result(timeout)

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    # -- the writer thread ------------------------------------------------------------

    def _take(self) -> list[tuple[Batch, Future[None]]] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            taken = [self._queue.popleft()]
            rows = taken[0][0].rows
            while self._queue and rows + self._queue[0][0].rows <= self.batch_max_rows:
                item = self._queue.popleft()
                rows += item[0].rows
                taken.append(item)
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            merged = merge(batch for batch, _ in taken)
            error: BaseException | None = None
            try:
                self._inserter.insert(merged)
            except StoreUnavailable as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - a write must never kill the writer
                log.exception("insert failed")
                error = StoreUnavailable(f"insert failed: {exc}")
            if error is not None:
                self.metrics.store_errors.inc()
            with self._cond:
                self._pending_rows -= merged.rows
                self.metrics.queue_rows.set(self._pending_rows)
            if error is None:
                notify(self._listeners, merged)
            for _, future in taken:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
