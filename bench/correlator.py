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
import random
import resource
import statistics
import threading
import time

from bench.correlator_traffic import transactions

NS = 1_000_000_000


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run() -> list[str]:
    import correlator.schema  # noqa: F401 - registers the correlator's migrations
    from correlator.engine import Correlator
    from correlator.service import CorrelatorService
    from stitchboard.config import load_config
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.store import connect
    from tests.conftest import ROOT, engine_url

    config = load_config(ROOT / "slas.yaml")
    tx_count = int(os.environ.get("BENCH_CORRELATOR_TXS", "1000000"))
    lines: list[str] = []

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
    lines.append(
        f"core backlog: {len(events):,} events -> {len(changes.upserts):,} transactions"
        f" in {elapsed:.1f}s = {rate:,.0f} events/s (target 200,000);"
        f" reference dict-build {len(events) / reference:,.0f} events/s,"
        f" ratio {rate / (len(events) / reference):.3f}"
    )
    del core, changes
    gc.collect()

    # -- 2. the same backlog stored in ClickHouse: read, correlate, write ------------------
    store = connect(engine_url(), database="bench_correlator")
    for table in ("events", "transactions", "transaction_keys"):
        store.command(f"TRUNCATE TABLE IF EXISTS {store.table(table)}")
    for i in range(0, len(events), 200_000):
        store.insert("events", EVENT_COLUMNS, [e.row() for e in events[i : i + 200_000]])
    count = len(events)
    del events
    gc.collect()
    started = time.perf_counter()
    scanned = store.scalar(
        f"SELECT count() FROM (SELECT event_id, keys, attributes FROM {store.table('events')})"
    )
    scan = time.perf_counter() - started
    service = CorrelatorService(store, config)
    started = time.perf_counter()
    service.full_pass()
    elapsed = time.perf_counter() - started
    lines.append(
        f"stored backlog (read + correlate + write {service.correlator.transaction_count:,}"
        f" transactions): {count / elapsed:,.0f} events/s; engine scan of the same rows"
        f" {scanned / scan:,.0f} rows/s, ratio {(count / elapsed) / (scanned / scan):.3f}"
    )
    lines.append(f"peak memory after the backlog: {_peak_gib():.2f} GiB")

    # -- 3. freshness: 10,000 events/s through the writer on top of that backlog ---------
    lines.append(_freshness(store, service))
    service.stop()
    store.close()

    # -- 4. API lookups over many stored transactions ------------------------------------
    lines.extend(_api_latency(int(os.environ.get("BENCH_API_TXS", "10000000"))))
    lines.append(f"peak memory: {_peak_gib():.2f} GiB")
    return lines


def _freshness(store, service, rate: int = 10_000, seconds: int = 30) -> str:
    from correlator.queries import TransactionFilter, list_transactions
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.writer import Batch, BatchWriter

    writer = BatchWriter(store, max_rows=400_000, batch_max_rows=100_000)
    writer.add_listener(service.on_batch)
    service.recent_delays.clear()
    service.start()
    service.ready.wait()
    # New transactions (fresh ids and keys), arriving hop by hop in generation order.
    stream = transactions(rate * seconds // 4, seed=99, prefix="f")
    per_tick, tick = rate // 20, 0.05
    probes: list[float] = []
    sent = 0
    started = time.monotonic()
    probe_every = 20
    while time.monotonic() - started < seconds:
        chunk = []
        for event in stream:
            chunk.append(event.row())
            if len(chunk) >= per_tick:
                break
        if not chunk:
            break
        batch = Batch()
        batch.add("events", EVENT_COLUMNS, chunk)
        writer.write_sync(batch)
        acked = time.monotonic()
        sent += len(chunk)
        tick_no = sent // per_tick
        if tick_no % probe_every == 0:
            keys = chunk[-1][14]
            value = next(iter(keys.values()))
            probe = threading.Thread(target=_probe, args=(store, value, acked, probes,
                                                           TransactionFilter,
                                                           list_transactions))
            probe.start()
        pause = started + tick_no * tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    achieved = sent / (time.monotonic() - started)
    time.sleep(2)
    writer.close()
    delays = list(service.recent_delays)
    return (
        f"freshness at {achieved:,.0f} events/s offered for {seconds}s: ack -> transaction"
        f" written p50 {_p(delays, 0.5):.2f}s p95 {_p(delays, 0.95):.2f}s (target 5s);"
        f" ack -> visible to an API query p95 {_p(probes, 0.95) if probes else float('nan'):.2f}s"
        f" over {len(probes)} probes"
    )


def _probe(store, value, acked, out, TransactionFilter, list_transactions) -> None:  # noqa: N803
    deadline = acked + 60
    where = TransactionFilter(key_values=(value,))
    while time.monotonic() < deadline:
        items, _ = list_transactions(store, where, 5, time.time_ns())
        if items:
            out.append(time.monotonic() - acked)
            return
        time.sleep(0.05)


def _api_latency(count: int) -> list[str]:
    from correlator.queries import TransactionFilter, get_transaction, list_transactions
    from stitchboard.store import connect
    from tests.conftest import engine_url

    store = connect(engine_url(), database="bench_api")
    tx = store.table("transactions")
    keys = store.table("transaction_keys")
    existing = store.scalar(f"SELECT count() FROM {tx}")
    if existing != count:
        store.command(f"TRUNCATE TABLE {tx}")
        store.command(f"TRUNCATE TABLE {keys}")
        started = time.perf_counter()
        # Rows shaped like the correlator's: 5 workflows, 3 facilities, ~60 days of starts.
        store.command(f"""
            INSERT INTO {tx} (id, workflow, id_time, facility, status, level, start_time,
                last_time, steps, missed, event_ids, event_steps, key_names, key_values,
                event_count, version)
            SELECT lower(hex(MD5(toString(number)))) AS id,
                ['discharge_to_revenue','claim_to_cash','implant_use_to_replenishment',
                 'requisition_to_payment','timecard_to_labor_gl'][number % 5 + 1],
                toDateTime64('2026-01-01 00:00:00', 9, 'UTC') + toIntervalSecond(number % 5184000),
                ['NMC01','LCH02','MSC03'][number % 3 + 1],
                ['complete','in_progress','late','overdue','failed'][number % 5 + 1], '',
                toDateTime64('2026-01-01 00:00:00', 9, 'UTC') + toIntervalSecond(number % 5184000),
                toDateTime64('2026-01-01 00:00:00', 9, 'UTC') + toIntervalSecond(number % 5184000),
                '[]', '[]', [concat('e', toString(number))], ['discharge'],
                ['visit','account','charge','msg'],
                [concat('V', toString(number)), concat('A', toString(number)),
                 concat('C', toString(number)), concat('M', toString(number))],
                4, 1
            FROM numbers({count})""")
        store.command(f"""
            INSERT INTO {keys} (value, key, transaction_id, workflow, id_time)
            SELECT concat(p.1, toString(number)), p.2, lower(hex(MD5(toString(number)))),
                'discharge_to_revenue', toDateTime64('2026-01-01 00:00:00', 9, 'UTC')
            FROM numbers({count})
            ARRAY JOIN [('V','visit'),('A','account'),('C','charge'),('M','msg')] AS p""")
        load = time.perf_counter() - started
    else:
        load = 0.0
    rng = random.Random(5)
    now = time.time_ns()
    by_id, by_key, newest = [], [], []
    for _ in range(200):
        n = rng.randrange(count)
        tx_id = store.scalar("SELECT lower(hex(MD5(toString({n:UInt64}))))", {"n": n})
        started = time.perf_counter()
        found = get_transaction(store, tx_id, now)
        by_id.append(time.perf_counter() - started)
        assert found is not None, tx_id
        started = time.perf_counter()
        items, _ = list_transactions(store, TransactionFilter(key_values=(f"C{n}",)), 50, now)
        by_key.append(time.perf_counter() - started)
        assert items, n
    for _ in range(20):
        started = time.perf_counter()
        list_transactions(store, TransactionFilter(workflow="discharge_to_revenue"), 50, now)
        newest.append(time.perf_counter() - started)
    started = time.perf_counter()
    store.scalar("SELECT 1")
    ping = time.perf_counter() - started
    store.close()
    ms = 1000
    return [
        f"API at {count:,} transactions (generated in {load:.0f}s): /transactions/{{id}}"
        f" p50 {statistics.median(by_id) * ms:.1f} ms p95 {_p(by_id, 0.95) * ms:.1f} ms;"
        f" ?key= p50 {statistics.median(by_key) * ms:.1f} ms p95 {_p(by_key, 0.95) * ms:.1f} ms"
        f" (target 50 ms); newest page of one workflow p95 {_p(newest, 0.95) * ms:.0f} ms"
        f" (target 500 ms); reference SELECT 1 {ping * ms:.1f} ms",
    ]
