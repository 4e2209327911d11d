"""The correlator over a hospital system's history: the full pass, its memory, then a restart.

On the bench traffic (``bench.correlator_traffic``) stored in the embedded engine,
the running correlator's own code (``CorrelatorService.start_up``):

1. first start over the stored events: no state yet, so a full pass (the SQL batch
   pass, every transaction written, the lookup hops the live path continues from,
   the watermark saved), in events/s, with the process's peak resident memory
   during it (engine plus Python: the engine runs in this process);
2. a restart over the same store: a new service resumes from the watermark; the
   time until it is ready, how many events it read and how many rows it rewrote
   (the issue's targets: ready within 60 s over 18 M events, nothing rewritten).

3. freshness on top of that history: the restarted service runs as in ``serve``
   while 10,000 events/s go through the spool and the writer for
   ``BENCH_SCALE_FRESH_SECONDS`` (default 60; the issue's setting is 600): new
   transactions hop by hop, and after every five of their events a late charge for
   a stored discharge, so about half the transactions touched are reloaded from the
   store (``bench.correlator_traffic.mixed``). ``0`` skips it.

``BENCH_SCALE_EVENTS`` sets the number of events (default 2,000,000; the figures in
BENCHMARKS.md use 18,000,000 or 20,000,000, about 40 minutes on 2 cores).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry

from bench.correlator import _freshness
from bench.correlator_batch import _peak_gib, _reset_peak, store_traffic
from bench.correlator_traffic import mixed


def run() -> Iterator[str]:
    from correlator import CorrelatorService
    from stitchboard.config import load_config
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.stages import open_store
    from tests.conftest import engine_url
    from tests.support import ROOT

    size = int(os.environ.get("BENCH_SCALE_EVENTS", "2000000"))
    config = load_config(ROOT / "slas.yaml")
    store = open_store(engine_url(), database="bench_correlator_scale")
    try:
        started = time.perf_counter()
        stored = store_traffic(store, size, EVENT_COLUMNS)
        yield f"{stored:,} events stored in {time.perf_counter() - started:.0f}s"

        time.sleep(1.5)  # past the margin below: a restart has nothing new to read
        _reset_peak()
        started = time.perf_counter()
        # The watermark trails the pass's start by a margin for inserts that become
        # visible late; here every insert finished before it, and with the default 60 s
        # the restart would re-read the last minute of this bench's own loading.
        first = CorrelatorService(store, config, watermark_margin=1.0)
        first.start_up()
        elapsed = time.perf_counter() - started
        report = first.report
        transactions = report.transactions if report is not None else first.rewritten
        yield (
            f"first start, full pass: {transactions:,} transactions in {elapsed:.0f}s ="
            f" {stored / elapsed:,.0f} events/s; peak RSS {_peak_gib():.2f} GiB"
            " (target: the batch pass <= 4 GiB at 20 M events)"
        )
        del first
        gc.collect()

        _reset_peak()
        started = time.perf_counter()
        registry = CollectorRegistry()  # what the live path correlates, below
        again = CorrelatorService(store, config, registry)
        read = again.start_up()
        ready = time.perf_counter() - started
        yield (
            f"restart over {stored:,} stored events: ready in {ready:.1f}s, {read:,} events"
            f" read since the watermark, {again.rewritten:,} rows rewritten; peak RSS"
            f" {_peak_gib():.2f} GiB   target: ready <= 60 s over 18 M, nothing rewritten"
        )

        seconds = int(os.environ.get("BENCH_SCALE_FRESH_SECONDS", "60"))
        if seconds:
            _reset_peak()
            started = time.perf_counter()
            line = _freshness(store, again, seconds=seconds, stream=mixed(stored))
            elapsed = time.perf_counter() - started
            correlated = registry.get_sample_value("stitchboard_correlated_events_total") or 0
            dropped = registry.get_sample_value("stitchboard_correlator_dropped_batches_total")
            busy = registry.get_sample_value("stitchboard_correlator_busy_seconds_total") or 0
            yield (
                f"on top of {stored:,} stored events: {line}; peak RSS {_peak_gib():.2f} GiB;"
                f" the live path correlated {correlated:,.0f} events in the {elapsed:.0f}s of"
                f" sending and probing = {correlated / elapsed:,.0f} events/s"
                f" ({dropped or 0:,.0f} writer batches not queued: read from the store);"
                f" busy {busy:.1f}s ({busy / elapsed:.0%} of the time) ="
                f" {correlated / busy if busy else 0:,.0f} events per busy second"
            )
            started = time.perf_counter()
            drained = again.wait_caught_up(timeout=1800)
            yield (
                f"the backlog left when sending stopped was correlated in"
                f" {time.perf_counter() - started:.0f}s"
                + ("" if drained else " (not yet: gave up waiting)")
                + f"; peak RSS {_peak_gib():.2f} GiB since sending began"
            )
            again.stop()
    finally:
        store.command("DROP DATABASE IF EXISTS bench_correlator_scale")  # gigabytes
        store.close()
