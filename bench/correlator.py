"""Correlator figures: backlog events/s, freshness under 10k events/s, API lookups at scale.

Sizes come from the environment so a quick run is possible:
``BENCH_CORRELATOR_TXS`` (default 1,000,000 backlog transactions, ~4.2 events
each) and ``BENCH_API_TXS`` (default 10,000,000 stored transactions).
Every figure is printed beside an in-run reference measured on the same machine
in the same run, so the ratio holds on a noisy machine.
"""

from __future__ import annotations

import gc
import os
import queue
import random
import resource
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import cast

from bench.correlator_traffic import transactions

NS = 1_000_000_000


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run() -> Iterator[str]:
    """Yields each figure as soon as it is measured."""
    from correlator import Correlator, CorrelatorService
    from stitchboard.config import load_config
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.stages import open_store
    from tests.conftest import engine_url
    from tests.support import ROOT

    config = load_config(ROOT / "slas.yaml")
    tx_count = int(os.environ.get("BENCH_CORRELATOR_TXS", "1000000"))

    # -- 1. the pure core on an in-memory backlog -----------------------------------------
    events = list(transactions(tx_count))
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    index = {e.event_id: e for e in events}  # reference: one dict insert per event
    reference = time.perf_counter() - started
    del index
    core = Correlator(config)
    started = time.perf_counter()
    core.add(events)
    changes = core.flush(now=time.time_ns())
    elapsed = time.perf_counter() - started
    gc.enable()
    rate = len(events) / elapsed
    yield (
        f"core backlog: {len(events):,} events -> {len(changes.upserts):,} transactions"
        f" in {elapsed:.1f}s = {rate:,.0f} events/s (target 200,000);"
        f" reference dict-build {len(events) / reference:,.0f} events/s,"
        f" ratio {rate / (len(events) / reference):.3f}"
    )
    del core, changes
    gc.collect()

    # -- 2. the same backlog stored in ClickHouse: read, correlate, write ------------------
    store = open_store(engine_url(), database="bench_correlator")
    for table in ("events", "transactions", "transaction_keys"):
        store.command(f"TRUNCATE TABLE IF EXISTS {store.table(table)}")
    for i in range(0, len(events), 200_000):
        store.insert("events", EVENT_COLUMNS, [e.row() for e in events[i : i + 200_000]])
    count = len(events)
    del events
    gc.collect()
    started = time.perf_counter()
    # Reference: the engine reading the same columns the correlator reads (not a count
    # from part metadata).
    scanned = store.rows(
        "SELECT count(), sum(length(event_id) + length(mapKeys(keys)) + length(system))"
        f" FROM {store.table('events')}"
    )[0][0]
    scan = time.perf_counter() - started
    service = CorrelatorService(store, config)
    started = time.perf_counter()
    service.full_pass()
    elapsed = time.perf_counter() - started
    written = service.report.transactions if service.report else 0
    yield (
        f"stored backlog (read + correlate + write {written:,}"
        f" transactions): {count / elapsed:,.0f} events/s; engine scan of the same rows"
        f" {scanned / scan:,.0f} rows/s, ratio {(count / elapsed) / (scanned / scan):.3f}"
    )
    yield f"peak memory after the backlog: {_peak_gib():.2f} GiB"

    # -- 3. freshness: 10,000 events/s through the writer on top of that backlog ---------
    yield _freshness(store, service)
    service.stop()
    store.command("DROP DATABASE IF EXISTS bench_correlator")  # gigabytes: do not leave them
    store.close()

    # -- 4. API lookups over many stored transactions ------------------------------------
    yield from _api_latency(int(os.environ.get("BENCH_API_TXS", "10000000")), config)
    yield f"peak memory: {_peak_gib():.2f} GiB"


def _freshness(
    store, service, rate: int = 10_000, seconds: int = 30, stream: Iterator | None = None
) -> str:
    """Events offered at ``rate`` through the spool and the writer for ``seconds``;
    ack -> visible to an API query, probed once a second.

    ``stream`` defaults to new transactions only. A probe is labelled "late" when its
    key ends in ``-L<n>`` (``bench.correlator_traffic.late_charges``: an event for a
    stored transaction the live path has to reload)."""
    from correlator import StoreTransactions, TransactionFilter
    from stitchboard.errors import Overloaded
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.spool import Journal, SpooledWriter
    from stitchboard.writer import Batch

    # The spool is in the path, as in ``stitchboard serve``: acknowledged = fdatasync'd.
    spool_dir = Path(tempfile.mkdtemp(prefix="stitchboard-bench-spool-"))
    writer = SpooledWriter(store, Journal(spool_dir), batch_max_rows=100_000)
    writer.add_listener(service.on_batch)
    writer.start()
    service.recent_delays.clear()
    service.start()
    service.ready.wait()
    # New transactions (fresh ids and keys), arriving hop by hop in generation order.
    if stream is None:
        stream = transactions(rate * seconds // 4, seed=99, prefix="f")
    reloaded = service.live.loaded_from_store
    per_tick, tick = rate // 20, 0.05
    probes: list[tuple[str, float]] = []
    asked: queue.Queue = queue.Queue()
    reader = StoreTransactions(store, service.correlator.config)
    prober = threading.Thread(
        target=_prober,
        args=(reader, asked, probes, TransactionFilter),
    )
    prober.start()

    def acknowledged(value: str) -> None:
        # Runs when the batch is durable (the moment a sender would get its 200).
        asked.put((value, time.monotonic()))

    sent = 0
    ticks = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        chunk = [e.row() for _, e in zip(range(per_tick), stream, strict=False)]
        if not chunk:
            break
        batch = Batch()
        batch.add("events", EVENT_COLUMNS, chunk)
        while True:
            try:
                future = writer.submit(batch)
                break
            except Overloaded:
                time.sleep(0.01)
        ticks += 1
        if ticks % 20 == 0:  # one probe a second
            keys = cast(dict[str, str], chunk[-1][EVENT_COLUMNS.index("keys")])
            value = next(iter(keys.values()))

            def done(_future: Future[None], value: str = value) -> None:
                acknowledged(value)

            future.add_done_callback(done)
        sent += len(chunk)
        pause = started + ticks * tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    achieved = sent / (time.monotonic() - started)
    writer.close()
    shutil.rmtree(spool_dir, ignore_errors=True)
    asked.put(None)
    prober.join()
    delays = list(service.recent_delays)
    everything = [d for _, d in probes]
    late = [d for v, d in probes if "-L" in v]
    split = ""
    if late:
        new = [d for v, d in probes if "-L" not in v]
        split = (
            f" (new transactions p95 {_p(new, 0.95) if new else float('nan'):.2f}s,"
            f" late events for stored ones p95 {_p(late, 0.95):.2f}s over {len(late)})"
        )
    return (
        f"freshness at {achieved:,.0f} events/s offered for {seconds}s, spool in the path:"
        " loaded -> transaction"
        f" written p50 {_p(delays, 0.5):.2f}s p95 {_p(delays, 0.95):.2f}s (target 5s);"
        " ack -> visible to an API query p95"
        f" {_p(everything, 0.95) if everything else float('nan'):.2f}s"
        f" over {len(probes)} probes{split};"
        f" {service.live.loaded_from_store - reloaded:,} transactions reloaded from the store"
    )


def _prober(reader, asked, out, TransactionFilter) -> None:  # noqa: N803
    """One reader, like one user refreshing: polls each probed key until it is visible."""
    while (item := asked.get()) is not None:
        value, acked = item
        where = TransactionFilter(key_values=(value,))
        while time.monotonic() < acked + 60:
            items, _ = reader.list_transactions(where, 5, time.time_ns())
            if items:
                out.append((value, time.monotonic() - acked))
                break
            time.sleep(0.05)
        else:
            out.append((value, float("inf")))  # never seen: counts against the percentile


# Ids shaped like the correlator's: 16 hex digits of id_time (ns), 16 of a hash.
_ID = (
    "concat(leftPad(lower(hex(toUnixTimestamp64Nano(toDateTime64('2026-01-01 00:00:00', 9,"
    " 'UTC') + toIntervalSecond(number % 5184000)))), 16, '0'),"
    " substring(lower(hex(MD5(toString(number)))), 1, 16))"
)


def _api_latency(count: int, config) -> list[str]:
    from correlator import StoreTransactions, TransactionFilter
    from stitchboard.stages import open_store
    from tests.conftest import engine_url

    store = open_store(engine_url(), database="bench_api")
    tx = store.table("transactions")
    keys = store.table("transaction_keys")  # filled by its materialized view
    existing = store.scalar(f"SELECT count() FROM {tx}")
    if existing != count:
        store.command(f"TRUNCATE TABLE {tx}")
        store.command(f"TRUNCATE TABLE {keys}")
        started = time.perf_counter()
        # Rows shaped like the correlator's: 5 workflows, 3 facilities, ~60 days of starts.
        store.command(f"""
            INSERT INTO {tx} (id, workflow, id_time, facility, status, level, start_time,
                last_time, event_ids, event_steps, key_names, key_values,
                event_count, version)
            SELECT {_ID} AS id,
                ['discharge_to_revenue','claim_to_cash','implant_use_to_replenishment',
                 'requisition_to_payment','timecard_to_labor_gl'][number % 5 + 1],
                toDateTime64('2026-01-01 00:00:00', 9, 'UTC') + toIntervalSecond(number % 5184000),
                ['NMC01','LCH02','MSC03'][number % 3 + 1],
                ['complete','in_progress','late','overdue','failed'][number % 5 + 1], '',
                toDateTime64('2026-01-01 00:00:00', 9, 'UTC') + toIntervalSecond(number % 5184000),
                toDateTime64('2026-01-01 00:00:00', 9, 'UTC') + toIntervalSecond(number % 5184000),
                [concat('e', toString(number))], ['discharge'],
                ['visit','account','charge','msg'],
                [concat('V', toString(number)), concat('A', toString(number)),
                 concat('C', toString(number)), concat('M', toString(number))],
                4, 1
            FROM numbers({count})""")
        # transaction_keys is filled by its materialized view from these rows.
        load = time.perf_counter() - started
    else:
        load = 0.0
    reader = StoreTransactions(store, config)
    rng = random.Random(5)
    now = time.time_ns()
    by_id, by_key, newest = [], [], []
    for _ in range(200):
        n = rng.randrange(count)
        tx_id = store.scalar(f"SELECT {_ID} FROM (SELECT {{n:UInt64}} AS number)", {"n": n})
        started = time.perf_counter()
        found = reader.get_transaction(tx_id, now)
        by_id.append(time.perf_counter() - started)
        assert found is not None, tx_id
        started = time.perf_counter()
        items, _ = reader.list_transactions(TransactionFilter(key_values=(f"C{n}",)), 50, now)
        by_key.append(time.perf_counter() - started)
        assert items, n
    for _ in range(20):
        started = time.perf_counter()
        reader.list_transactions(TransactionFilter(workflow="discharge_to_revenue"), 50, now)
        newest.append(time.perf_counter() - started)
    started = time.perf_counter()
    store.scalar("SELECT 1")
    ping = time.perf_counter() - started
    store.command("DROP DATABASE IF EXISTS bench_api")
    store.close()
    ms = 1000
    return [
        f"API at {count:,} transactions (generated in {load:.0f}s): /transactions/{{id}}"
        f" p50 {statistics.median(by_id) * ms:.1f} ms p95 {_p(by_id, 0.95) * ms:.1f} ms;"
        f" ?key= p50 {statistics.median(by_key) * ms:.1f} ms p95 {_p(by_key, 0.95) * ms:.1f} ms"
        f" (target 50 ms); newest page of one workflow p95 {_p(newest, 0.95) * ms:.0f} ms"
        f" (target 500 ms); reference SELECT 1 {ping * ms:.1f} ms",
    ]
