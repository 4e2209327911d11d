"""The correlator's SQL batch pass: grouping and whole-rebuild events/s, peak memory.

On the bench traffic (``bench.correlator_traffic``) stored in the embedded engine:

1. the component pass (routing, min-label propagation, attachment, ids in SQL,
   every workflow: the rebuild's ``grouping_seconds``) in events/s;
2. the whole rebuild (grouping, streaming into ``summarize``, writing every
   transaction and fan-in state, retiring) in events/s, with where its time went
   (the writing runs on a thread of its own, beside the other two);
3. the process's peak resident memory during the rebuild (the engine runs in this
   process, so this is engine plus Python);
4. the in-run references on the same stored events: the Python core alone
   (``Correlator.add`` + ``flush`` over the events held in memory) and the live
   correlator's full pass (``CorrelatorService.full_pass``: this rebuild plus the
   lookup hops and state the live path continues from).

``BENCH_BATCH_EVENTS`` sets the sizes (comma-separated, default ``1000000``);
``BENCH_BATCH_REFERENCE=0`` skips the references (they hold every event in
Python memory, about 3 KB each: leave them off past a few million events).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

from bench.correlator_traffic import transactions

NS = 1_000_000_000


def _peak_gib() -> float:
    """Peak resident memory since the last ``_reset_peak`` (VmHWM), in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _traffic(count: int) -> Iterator:
    return itertools.islice(transactions(count), count)


def store_traffic(store, size: int, columns) -> int:
    """Store ``size`` events of the bench traffic in ``events``; how many it holds."""
    stream = _traffic(size)
    while chunk := list(itertools.islice(stream, 200_000)):
        store.insert("events", columns, [e.row() for e in chunk])
    gc.collect()
    return int(store.scalar(f"SELECT count() FROM {store.table('events')}"))


def run() -> Iterator[str]:
    """Yields each figure as soon as it is measured."""
    from correlator import Correlator, CorrelatorService, rebuild
    from stitchboard.config import load_config
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.stages import open_store
    from tests.conftest import engine_url
    from tests.support import ROOT

    config = load_config(ROOT / "slas.yaml")
    sizes = [int(s) for s in os.environ.get("BENCH_BATCH_EVENTS", "1000000").split(",")]
    references = os.environ.get("BENCH_BATCH_REFERENCE", "1") != "0"
    store = open_store(engine_url(), database="bench_correlator_batch")
    try:
        for size in sizes:
            yield from _one_size(
                store, config, size, references, Correlator, CorrelatorService, rebuild,
                EVENT_COLUMNS,
            )  # fmt: skip
    finally:
        store.command("DROP DATABASE IF EXISTS bench_correlator_batch")  # gigabytes
        store.close()


def _one_size(
    store, config, size, references, Correlator, CorrelatorService, rebuild,  # noqa: N803
    EVENT_COLUMNS,  # noqa: N803
) -> Iterator[str]:  # fmt: skip
    for table in ("events", "transactions", "transaction_keys", "unmatched_events"):
        store.command(f"TRUNCATE TABLE IF EXISTS {store.table(table)}")
    stored = store_traffic(store, size, EVENT_COLUMNS)
    yield f"{stored:,} events stored ({size:,} asked)"

    # -- 1 and 2. the whole rebuild, writes included; its SQL half is the component pass ----
    _reset_peak()
    started = time.perf_counter()
    report = rebuild(store, config)
    whole = time.perf_counter() - started
    peak = _peak_gib()
    grouping = report.grouping_seconds
    yield (
        f"component pass (SQL: route, propagate, attach, ids): {report.transactions:,}"
        f" transactions in {grouping:.1f}s = {stored / grouping:,.0f} events/s (target 200,000)"
    )
    yield (
        f"rebuild incl. writes: {report.transactions:,} transactions in {whole:.1f}s ="
        f" {stored / whole:,.0f} events/s (target 100,000); grouping {grouping:.1f}s,"
        f" reading back + summarize {report.summarize_seconds:.1f}s"
        f" ({stored / max(report.summarize_seconds, 1e-9):,.0f} events/s), writing"
        f" {report.write_seconds:.1f}s (on a writer thread: overlaps the other two)"
    )
    yield f"peak RSS during the rebuild (engine + Python): {peak:.2f} GiB"
    rounds = ", ".join(f"{w.workflow} {w.rounds}" for w in report.workflows if w.hops)
    yield f"propagation rounds per workflow: {rounds}"
    if not references:
        return

    # -- 3. references on the same traffic --------------------------------------------------
    events = list(_traffic(size))
    gc.collect()
    gc.disable()
    core = Correlator(config)
    started = time.perf_counter()
    core.add(events)
    changes = core.flush(now=time.time_ns())
    elapsed = time.perf_counter() - started
    gc.enable()
    core_rate = len(events) / elapsed
    yield (
        f"reference, Python core in memory: {len(changes.upserts):,} transactions,"
        f" {core_rate:,.0f} events/s; component pass / core {stored / grouping / core_rate:.2f}x,"
        f" rebuild / core {stored / whole / core_rate:.2f}x"
    )
    del core, changes, events
    gc.collect()
    service = CorrelatorService(store, config)
    started = time.perf_counter()
    service.full_pass()
    full = time.perf_counter() - started
    yield (
        f"reference, live full pass (rebuild + handover): {stored / full:,.0f} events/s;"
        f" rebuild / full pass {full / whole:.2f}x"
    )
    del service
    gc.collect()
