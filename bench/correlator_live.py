"""The live correlator over a long history: memory, restart, throughput.

Replays ``BENCH_LIVE_DAYS`` days (default 30) of the correlator benchmark's
traffic at ``BENCH_LIVE_PER_DAY`` events a day (default 12,000) day by day, in
batches of 5,000, each variant in a process of its own (RSS is per process):

- ``core``: the in-memory core as the live path was before (every event held):
  the in-run reference;
- ``capped``: the live path, state in ClickHouse, a component cache of
  ``BENCH_LIVE_CACHE`` hops (default 20,000);
- ``uncapped``: the same with a cache that never evicts.

Each prints its RSS at a third of the days and at the end (bounded memory: the
last within 10 % of the first), its events/s, and for ``capped`` the restart:
resume from the watermark over the stored history against a full pass over it,
then freshness at 10,000 events/s for ``BENCH_LIVE_FRESHNESS_S`` seconds
(default 20; 0 skips it) through the spool and writer, as in ``bench/correlator.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

NS = 1_000_000_000
DAY = 86_400 * NS


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run() -> Iterator[str]:
    days = int(os.environ.get("BENCH_LIVE_DAYS", "30"))
    per_day = int(os.environ.get("BENCH_LIVE_PER_DAY", "12000"))
    cache = int(os.environ.get("BENCH_LIVE_CACHE", "20000"))
    freshness = int(os.environ.get("BENCH_LIVE_FRESHNESS_S", "20"))
    results = {}
    for variant in ("core", "capped", "uncapped"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.correlator_live", variant, str(days), str(per_day)]
            + [str(cache), str(freshness if variant == "capped" else 0)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            yield f"{variant}: FAILED {out.stderr.strip().splitlines()[-1:]}"
            continue
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[variant]
        yield (
            f"{variant:<9} {r['events']:,} events over {days} days:"
            f" RSS day {days // 3} {r['rss_third']:.0f} MiB, day {days} {r['rss_end']:.0f} MiB"
            f" (growth {100 * (r['rss_end'] / r['rss_third'] - 1):+.1f} %),"
            f" {r['rate']:,.0f} events/s correlated and written"
            + (f", {r['reloaded']:,} transactions reloaded" if "reloaded" in r else "")
            + (
                f"; written per event: {r['ids_per_event']:.1f} event ids,"
                f" {r['keys_per_event']:.1f} key rows"
                if "ids_per_event" in r
                else ""
            )
        )
    if "capped" in results:
        r = results["capped"]
        yield (
            f"restart over {r['events']:,} stored events: resume {r['resume_s']:.2f}s"
            f" ({r['resume_events']:,} events re-read since the watermark,"
            f" {r['resume_rows']} rows rewritten); full pass over the same store"
            f" {r['full_s']:.2f}s (reference), ratio {r['resume_s'] / r['full_s']:.3f}"
        )
        if "freshness" in r:
            yield f"on top of that history, capped cache: {r['freshness']}"


def _variant(
    variant: str, days: int, per_day: int, cache: int, freshness: int = 0
) -> dict[str, object]:
    import gc

    from bench.correlator_traffic import T0, transactions
    from correlator import Correlator, CorrelatorService
    from stitchboard.config import load_config
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.stages import open_store
    from stitchboard.writer import Batch
    from tests.support import ROOT

    config = load_config(ROOT / "slas.yaml")
    data = Path(tempfile.mkdtemp(prefix="stitchboard-bench-live-"))
    store = open_store(f"chdb://{data}", database="bench_live")
    per_tx = 4.2  # events per transaction in this traffic
    pending: dict[int, list] = {}  # hops dated after the day they were generated on

    def arriving(day: int) -> list:
        """The day's new transactions' hops up to the day's end, and the hops of earlier
        ones that fall on this day (claims stay open for ~2 weeks)."""
        fresh = transactions(int(per_day / per_tx), seed=day, spread_ns=DAY, prefix=f"d{day}-")
        for e in fresh:
            shift = day * DAY
            moved = replace(
                e, event_time=e.event_time + shift, observed_time=e.observed_time + shift
            )
            pending.setdefault((moved.event_time - T0) // DAY, []).append(moved)
        return sorted(pending.pop(day, []), key=lambda e: e.event_time)

    core = Correlator(config) if variant == "core" else None
    # The watermark trails the stream by 2 s here (60 s in serve): the run is short.
    margin = 2.0
    service = CorrelatorService(
        store,
        config,
        cache_hops=cache if variant == "capped" else 10**9,
        watermark_margin=margin,
    )
    service.start_up()
    if core is not None:
        service._release()
    rss_third = 0.0
    count = 0
    elapsed = 0.0
    batch_size = 5_000
    for day in range(days):
        todays = arriving(day)
        now = T0 + (day + 1) * DAY
        for i in range(0, len(todays), batch_size):
            part = todays[i : i + batch_size]
            rows = [e.row() for e in part]
            store.insert("events", EVENT_COLUMNS, rows)
            started = time.perf_counter()
            if core is not None:
                core.add(part)
                service.sink.write(core.flush(now))
            else:
                batch = Batch()
                batch.add("events", EVENT_COLUMNS, rows)
                service.on_batch(batch)
                service.step(now)
            elapsed += time.perf_counter() - started
            count += len(part)
        if day + 1 == days // 3:
            gc.collect()
            rss_third = _rss_mib()
        if (day + 1) % 10 == 0:  # progress of a long run, on stderr (stdout is the result)
            print(
                f"{variant}: day {day + 1}, {count:,} events, RSS {_rss_mib():.0f} MiB,"
                f" {count / elapsed:,.0f} events/s",
                file=sys.stderr,
                flush=True,
            )
    gc.collect()
    result: dict[str, object] = {
        "events": count,
        "rss_third": rss_third,
        "rss_end": _rss_mib(),
        "rate": count / elapsed,
    }
    if core is None:
        result["reloaded"] = service.live.loaded_from_store
        result["ids_per_event"] = service.index.event_ids_written / count
        result["keys_per_event"] = service.index.key_rows_written / count
    if variant == "capped":
        service._save_state(force=True)
        started = time.perf_counter()
        time.sleep(margin)
        again = CorrelatorService(store, config, cache_hops=cache, watermark_margin=margin)
        result["resume_events"] = again.start_up()
        result["resume_s"] = time.perf_counter() - started
        result["resume_rows"] = again.rewritten
        started = time.perf_counter()
        CorrelatorService(store, config).full_pass()
        result["full_s"] = time.perf_counter() - started
        if freshness:
            from bench.correlator import _freshness

            live = CorrelatorService(store, config, cache_hops=cache, watermark_margin=margin)
            result["freshness"] = _freshness(store, live, seconds=freshness)
            live.stop()
    store.close()
    shutil.rmtree(data, ignore_errors=True)
    return result


if __name__ == "__main__":
    name, days_text, per_day_text, cache_text, freshness_text = sys.argv[1:6]
    print(
        json.dumps(
            _variant(name, int(days_text), int(per_day_text), int(cache_text), int(freshness_text))
        )
    )
