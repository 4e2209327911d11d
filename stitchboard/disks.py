"""Free disk where Stitchboard writes: the store's disks and the ingest spool's filesystem.

ClickHouse refuses inserts once a disk is full, and the correlator's batch pass
spills its joins and aggregations to disk (docs/correlator-batch.md): a pass that
runs out of space fails with the engine's own error. So the free space is watched
before it runs out: ``/api/v1/health`` lists it with a warning per disk below
``STITCHBOARD_DISK_MIN_FREE_PERCENT``, ``/metrics`` has it for Prometheus, and the
data health page shows the lowest.

The store's disks come from ``system.disks`` of the server Stitchboard talks to (the
embedded engine's data directory, or a ClickHouse server's disks; on a cluster the
node it is connected to). Disks without a size (object storage) are left out.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stitchboard.store import Store

log = logging.getLogger(__name__)

GIB = 1 << 30


@dataclass(frozen=True)
class DiskSpace:
    name: str  # "store:<disk>" or "spool"
    path: str
    free_bytes: int
    total_bytes: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 100.0

    def low(self, min_free_percent: float) -> bool:
        return self.free_percent < min_free_percent

    def as_dict(self, min_free_percent: float) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "free_bytes": self.free_bytes,
            "total_bytes": self.total_bytes,
            "free_percent": round(self.free_percent, 1),
            "low": self.low(min_free_percent),
        }

    def warning(self) -> str:
        return (
            f"{self.name} ({self.path}) has {self.free_bytes / GIB:,.1f} GiB free"
            f" ({self.free_percent:.1f} % of {self.total_bytes / GIB:,.1f} GiB)"
        )


def store_disks(store: Store) -> list[DiskSpace]:
    rows = store.rows(
        "SELECT name, path, free_space, total_space FROM system.disks"
        " WHERE total_space > 0 ORDER BY name"
    )
    return [
        DiskSpace(f"store:{name}", path, int(free), int(total)) for name, path, free, total in rows
    ]


def path_space(name: str, path: Path) -> DiskSpace:
    """The filesystem of ``path``, or of its nearest existing parent (not created yet)."""
    absolute = where = path.absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    usage = shutil.disk_usage(where)
    return DiskSpace(name, str(absolute), usage.free, usage.total)


def disk_spaces(store: Store, spool_dir: Path | None) -> list[DiskSpace]:
    """The store's disks (raises ``StoreUnavailable`` when it is down), then the spool's."""
    disks = store_disks(store)
    if spool_dir is not None:
        disks.append(path_space("spool", spool_dir))
    return disks


def warnings(disks: list[DiskSpace], min_free_percent: float) -> list[str]:
    return [
        f"low disk: {d.warning()}, below the {min_free_percent:g} % that"
        " STITCHBOARD_DISK_MIN_FREE_PERCENT asks for"
        for d in disks
        if d.low(min_free_percent)
    ]


class DiskCollector(Collector):
    """``stitchboard_disk_free_bytes`` and ``…_total_bytes`` per disk, read when scraped
    (at most every ``max_age`` seconds: a scrape never waits on more than one query)."""

    def __init__(self, store: Store, spool_dir: Path | None, max_age: float = 10.0):
        self.store = store
        self.spool_dir = spool_dir
        self.max_age = max_age
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._disks: list[DiskSpace] = []

    def read(self) -> list[DiskSpace]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.max_age:
                try:
                    self._disks = disk_spaces(self.store, self.spool_dir)
                except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
                    log.debug("disk space not read: %s", exc)
                    spool = self.spool_dir
                    self._disks = [path_space("spool", spool)] if spool is not None else []
                self._read_at = time.monotonic()
            return list(self._disks)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families([])  # registering must not query the store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(self.read())

    def _families(self, disks: list[DiskSpace]) -> Iterator[GaugeMetricFamily]:
        free = GaugeMetricFamily(
            "stitchboard_disk_free_bytes",
            "Free bytes of the store's disks and the spool's filesystem",
            labels=["disk", "path"],
        )
        total = GaugeMetricFamily(
            "stitchboard_disk_total_bytes",
            "Size in bytes of the store's disks and the spool's filesystem",
            labels=["disk", "path"],
        )
        for disk in disks:
            free.add_metric([disk.name, disk.path], disk.free_bytes)
            total.add_metric([disk.name, disk.path], disk.total_bytes)
        yield free
        yield total
