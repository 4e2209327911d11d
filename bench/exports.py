"""Export bundles at scale: a 100,000-transaction export, its rate and its peak memory.

``BENCH_EXPORT_TXS`` (default 100,000) synthetic transactions (the correlator
benchmark's traffic, stitched by the correlator) are exported twice into a
signed bundle: first the oldest tenth (by ``until``), then everything. The
resident memory of this process is sampled while each export runs; the bundle
is streamed a page at a time, so the growth over the baseline should be about
the same for both, not ten times larger. The bundle is then verified. The load
average is printed at start and end: the machine may be shared.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

NS = 1_000_000_000
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


class _PeakRss:
    """Samples this process's resident memory every 20 ms while in the block."""

    def __init__(self) -> None:
        self.baseline = _rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run() -> Iterator[str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bench.correlator_traffic import T0, transactions
    from correlator import CorrelatorService
    from exports import Selection, verify_bundle, write_bundle
    from stitchboard.config import load_config
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.stages import open_store

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "slas.yaml")
    count = int(os.environ.get("BENCH_EXPORT_TXS", "100000"))
    yield f"{os.cpu_count()} cores, {_load()}"
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-bench-export-"))
    try:
        store = open_store(f"chdb://{workdir / 'data'}", database="bench_exports")
        events = list(transactions(count))
        for i in range(0, len(events), 200_000):
            store.insert("events", EVENT_COLUMNS, [e.row() for e in events[i : i + 200_000]])
        n_events = len(events)
        del events
        gc.collect()
        service = CorrelatorService(store, config)
        service.full_pass()
        stored = store.scalar(
            f"SELECT count() FROM {store.table('transactions')} FINAL WHERE deleted = 0"
        )
        yield f"{n_events:,} events stitched into {stored:,} transactions"
        key = Ed25519PrivateKey.generate()
        tenth = dt.datetime.fromtimestamp((T0 + 6 * 24 * 3600 * NS) / NS, dt.UTC)
        for label, selection in (
            ("first 6 days", Selection(until=tenth.isoformat())),
            ("everything", Selection()),
        ):
            out = workdir / f"{label.replace(' ', '-')}.zip"
            gc.collect()
            with _PeakRss() as memory:
                started = time.perf_counter()
                manifest = write_bundle(
                    store,
                    config,
                    root / "slas.yaml",
                    lambda value: value,
                    selection,
                    out,
                    "bench",
                    key,
                )
                elapsed = time.perf_counter() - started
            exported = manifest["transactions"]
            yield (
                f"export {label}: {exported:,} transactions in {elapsed:.1f}s"
                f" = {exported / elapsed:,.0f} tx/s, bundle {_mib(out.stat().st_size)};"
                f" RSS {_mib(memory.baseline)} before, peak {_mib(memory.peak)}"
                f" (+{_mib(memory.peak - memory.baseline)})"
            )
            started = time.perf_counter()
            report = verify_bundle(out, key.public_key())
            yield (
                f"verify {label}: {'ok' if report.ok else report.problems[:3]},"
                f" {report.files_checked} files in {time.perf_counter() - started:.1f}s"
            )
        service.stop()
        store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    yield _load()
